package securetest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// The topics, group and transactional id prefix the secure stack's ACLs
// name (scripts/secure/stack-secure.sh).
const (
	topicLevels      = "stock.levels.v1"
	topicChanges     = "stock.changes.v1"
	topicAlerts      = "stock.alerts.v1"
	topicCheckpoints = "stock.producer.checkpoints"
	topicDLQ         = "stock.levels.v1.dlq"
	projectorGroup   = "stock-projector"
	producerTxnIDs   = "stock-producer-"
)

// kafkaClient is a franz-go client of the secure broker as user over TLS,
// failing fast: one try per request. (kgo.SASL adds a mechanism to those
// the client tries: a test of a wrong password passes it as pw.)
func kafkaClient(t *testing.T, s *testenv.SecureStack, user, pw string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(s.KafkaBrokers...),
		kgo.DialTLSConfig(s.TLSConfig(t, "")),
		kgo.SASL(scram.Auth{User: user, Pass: pw}.AsSha512Mechanism()),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(5 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// listTopics is one metadata request within 2*early.
func listTopics(cl *kgo.Client) (kadm.TopicDetails, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*early)
	defer cancel()
	start := time.Now()
	d, err := kadm.NewClient(cl).ListTopics(ctx)
	return d, time.Since(start), err
}

// javaTool runs one of the Kafka distribution's command line tools (what
// kafka-topics.sh and friends run): class, with the client configuration
// file props given by configFlag, the secure broker and args, reading stdin.
func javaTool(t *testing.T, s *testenv.SecureStack, stdin, class, configFlag, props string, args ...string) result {
	t.Helper()
	java := tool(t, "java")
	if ok, _ := filepath.Glob(filepath.Join(s.KafkaLibs, "kafka-tools-*.jar")); len(ok) == 0 {
		t.Fatalf("no Kafka tools in %s (STOCK_SECURE_KAFKA_LIBS)", s.KafkaLibs)
	}
	return runInput(t, stdin, nil, java, append([]string{"-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-Dlog4j2.rootLogger.level=OFF", "-cp", filepath.Join(s.KafkaLibs, "*"), class,
		"--bootstrap-server", strings.Join(s.KafkaBrokers, ","), configFlag, props}, args...)...)
}

// javaProps is a Java client configuration for user with password pw.
func javaProps(t *testing.T, s *testenv.SecureStack, user, pw string) string {
	t.Helper()
	return secretFile(t, "client.properties", fmt.Sprintf(`security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";
ssl.truststore.type=PEM
ssl.truststore.location=%s
`, user, pw, s.CAFile))
}

func TestKafkaRefusesBadClients(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "kafka", testenv.KafkaProducer)

	t.Run("franz-go", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pw   string
			opts []kgo.Opt
			want []string
		}{
			{"wrong password", "not-the-password", nil,
				[]string{"SASL_AUTHENTICATION_FAILED", "invalid credentials"}},
			// The broker answers a plaintext request with a TLS alert, which
			// franz-go recognises.
			{"without TLS", pw, []kgo.Opt{kgo.DialTLSConfig(nil)},
				[]string{"plaintext connection speaking to a tls endpoint"}},
			{"certificate for another host", pw, []kgo.Opt{kgo.DialTLSConfig(s.TLSConfig(t, "wrong.invalid"))},
				[]string{"certificate is valid for", "not wrong.invalid"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, took, err := listTopics(kafkaClient(t, s, testenv.KafkaProducer, tc.pw, tc.opts...))
				refused(t, tc.name, err, "", took, tc.want...)
			})
		}
	})

	t.Run("kafka tools", func(t *testing.T) {
		r := javaTool(t, s, "", "org.apache.kafka.tools.TopicCommand", "--command-config",
			javaProps(t, s, testenv.KafkaProducer, "not-the-password"), "--list")
		refusedRun(t, "kafka-topics with a wrong password", r, "Authentication failed during authentication due to invalid credentials")
	})

	t.Run("kcat", func(t *testing.T) {
		// Debian 12's kcat (librdkafka 2.0.2) cannot authenticate with SCRAM
		// to Kafka 4 at all (fixed in librdkafka 2.6.1), so it is only the
		// client that forgot TLS here.
		conf := secretFile(t, "kcat.conf", "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\n"+
			"sasl.username="+testenv.KafkaProducer+"\nsasl.password="+pw+"\n")
		r := run(t, nil, tool(t, "kcat"), "-F", conf, "-b", strings.Join(s.KafkaBrokers, ","), "-L", "-m", "3")
		refusedRun(t, "kcat without TLS", r, "connecting to a SSL listener")
	})
}

func TestKafkaProducerPrincipal(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "kafka", testenv.KafkaProducer)

	t.Run("sees only its topics", func(t *testing.T) {
		d, _, err := listTopics(kafkaClient(t, s, testenv.KafkaProducer, pw))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{topicAlerts, topicChanges, topicLevels, topicCheckpoints}
		if got := d.Names(); !slices.Equal(got, want) {
			t.Errorf("topics %v, want %v", got, want)
		}
		r := javaTool(t, s, "", "org.apache.kafka.tools.TopicCommand", "--command-config",
			javaProps(t, s, testenv.KafkaProducer, pw), "--list")
		if got := strings.Fields(r.out); r.err != nil || !slices.Equal(got, want) {
			t.Errorf("kafka-topics --list as the producer: %v %v, want %v", got, r.err, want)
		}
	})

	t.Run("runs a transaction on its topics", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id := producerTxnIDs + testenv.Name(t, "securetest")
		cl := kafkaClient(t, s, testenv.KafkaProducer, pw, kgo.TransactionalID(id), kgo.RequestRetries(5))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topicChanges, Key: []byte(id), Value: []byte("securetest")}).FirstErr(); err != nil {
			t.Fatalf("producing in a transaction as %s: %v", testenv.KafkaProducer, err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("committing as %s: %v", testenv.KafkaProducer, err)
		}
	})

	t.Run("no transactional id but its own", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*early)
		defer cancel()
		cl := kafkaClient(t, s, testenv.KafkaProducer, pw, kgo.TransactionalID(testenv.Name(t, "securetest")))
		start := time.Now()
		err := cl.BeginTransaction()
		if err == nil {
			err = cl.ProduceSync(ctx, &kgo.Record{Topic: topicChanges, Value: []byte("x")}).FirstErr()
		}
		refused(t, "a foreign transactional id", err, "", time.Since(start), "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
	})
}

func TestKafkaProjectorPrincipal(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "kafka", testenv.KafkaProjector)

	t.Run("may not write the levels topic", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*early)
		defer cancel()
		cl := kafkaClient(t, s, testenv.KafkaProjector, pw)
		start := time.Now()
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: topicLevels, Key: []byte("SKU-000001"), Value: []byte("forged")}).FirstErr()
		refused(t, "producing to "+topicLevels, err, "", time.Since(start), "TOPIC_AUTHORIZATION_FAILED")

		// One line on stdin, the record it tries to write; --sync makes it
		// report the refusal (and exit 1) instead of only logging it.
		r := javaTool(t, s, "forged\n", "org.apache.kafka.tools.ConsoleProducer", "--producer.config",
			javaProps(t, s, testenv.KafkaProjector, pw), "--topic", topicLevels, "--sync")
		refusedRun(t, "kafka-console-producer to "+topicLevels, r, "Not authorized to access topics", topicLevels)
	})

	t.Run("consumes the levels in its group and writes dead letters", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assigned := make(chan struct{}, 1) // one signal is enough
		cl := kafkaClient(t, s, testenv.KafkaProjector, pw, kgo.RequestRetries(5),
			kgo.ConsumerGroup(projectorGroup), kgo.ConsumeTopics(topicLevels), kgo.DisableAutoCommit(),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				select {
				case assigned <- struct{}{}:
				default:
				}
			}))
		for done := false; !done; {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			fs := cl.PollFetches(pctx)
			pcancel()
			for _, e := range fs.Errors() {
				if !errors.Is(e.Err, context.DeadlineExceeded) {
					t.Fatalf("consuming %s in group %s: %v", topicLevels, projectorGroup, e.Err)
				}
			}
			select {
			case <-assigned:
				done = true
			case <-ctx.Done():
				t.Fatal("no partitions assigned within a minute")
			default:
			}
		}
		// Offsets are never committed here: the group's position is the
		// projector's.
		dlq := kafkaClient(t, s, testenv.KafkaProjector, pw, kgo.RequestRetries(5))
		rec := &kgo.Record{Topic: topicDLQ, Key: []byte("securetest"), Value: []byte("a test of the dead-letter write right"),
			Headers: []kgo.RecordHeader{{Key: "dlq_reason_code", Value: []byte("securetest")}}}
		if err := dlq.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Errorf("writing a dead letter as %s: %v", testenv.KafkaProjector, err)
		}
	})

	t.Run("no other group", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*early)
		defer cancel()
		cl := kafkaClient(t, s, testenv.KafkaProjector, pw,
			kgo.ConsumerGroup(testenv.Name(t, "securetest")), kgo.ConsumeTopics(topicLevels))
		start := time.Now()
		var err error
		for err == nil && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			for _, e := range fs.Errors() {
				err = e.Err
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		refused(t, "joining another group", err, "", time.Since(start), "GROUP_AUTHORIZATION_FAILED")
	})
}

// The broker's MTLS listener takes a client certificate of the local CA
// instead of a password, and its CN is the principal: the client the
// programs build from --kafka-tls-ca-file, --kafka-tls-cert-file and
// --kafka-tls-key-file, with the projector's certificate, reads what the
// projector may read and is denied what it may not write. Without a
// certificate the handshake fails.
func TestKafkaMutualTLS(t *testing.T) {
	s := testenv.Secure(t)
	client := func(tc tlsconf.Config) *kgo.Client {
		opts, err := kafkaconn.Config{Brokers: s.KafkaMTLSBrokers, TLS: tc}.Opts()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(5*time.Second))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	projector := client(tlsconf.Config{CAFile: s.CAFile, CertFile: s.ProjectorCert, KeyFile: s.ProjectorKey})
	ctx, cancel := context.WithTimeout(context.Background(), 2*early)
	defer cancel()
	ends, err := kadm.NewClient(projector).ListEndOffsets(ctx, topicLevels)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("the projector's certificate reading %s's offsets: %v", topicLevels, err)
	}
	start := time.Now()
	err = projector.ProduceSync(ctx, &kgo.Record{Topic: topicLevels, Key: []byte("SKU-MTLS"), Value: []byte("x")}).FirstErr()
	refused(t, "the projector's certificate producing to "+topicLevels, err, "", time.Since(start), "TOPIC_AUTHORIZATION_FAILED")

	_, took, err := listTopics(client(tlsconf.Config{CAFile: s.CAFile}))
	refused(t, "no client certificate", err, "", took, "bad certificate")
}
