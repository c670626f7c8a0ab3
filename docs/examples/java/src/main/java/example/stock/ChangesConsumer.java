package example.stock;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads every row change of stock.changes.v1 once, the way a team outside the
 * project would: the Kafka client reading committed records only, each Avro
 * value decoded with the writer schema whose id it carries (Confluent wire
 * format: magic byte 0, a 4-byte big-endian schema id, the Avro body), fetched
 * from the schema registry.
 *
 * <p>It shows there is nothing to deduplicate: every ce_id is seen once, and
 * each row's versions follow each other without a gap or a repeat from its
 * snapshot read on. It prints a summary, then the rows of the products asked
 * for as their last change left them.
 *
 * <pre>
 * java -cp "$(cat target/classpath)" src/main/java/example/stock/ChangesConsumer.java \
 *     --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081/apis/ccompat/v7 --product SKU-000042
 * </pre>
 */
public final class ChangesConsumer {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] argv) throws Exception {
    Map<String, List<String>> args = parse(argv);
    String bootstrap = one(args, "--bootstrap", "127.0.0.1:9092");
    String topic = one(args, "--topic", "stock.changes.v1");
    Registry registry = new Registry(one(args, "--registry", "http://127.0.0.1:8081/apis/ccompat/v7"));

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, "changes-example-" + UUID.randomUUID());
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); // aborted transactions never show
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false"); // a typo must not make a topic

    long records = 0;
    int duplicateIds = 0;
    List<String> gaps = new ArrayList<>();
    Set<String> ids = new HashSet<>();
    Map<String, Long> versions = new HashMap<>(); // product/warehouse -> last version
    Map<String, Map<String, Map<String, Object>>> rows = new TreeMap<>(); // product -> warehouse -> row

    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions = new ArrayList<>();
      if (consumer.partitionsFor(topic).isEmpty()) {
        throw new IllegalArgumentException("no topic " + topic);
      }
      consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      // With read_committed, the end is the last stable offset: read to it.
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          records++;
          Header id = r.headers().lastHeader("ce_id");
          if (id == null || !ids.add(new String(id.value(), StandardCharsets.UTF_8))) {
            duplicateIds++;
          }
          GenericRecord change = registry.decode(r.value());
          String op = change.get("op").toString();
          String product = change.get("product_id").toString();
          String warehouse = change.get("warehouse_id").toString();
          GenericRecord after = (GenericRecord) change.get("after");
          String row = product + "/" + warehouse;
          Long last = versions.get(row);
          if ("d".equals(op)) {
            versions.remove(row);
            rows.getOrDefault(product, new HashMap<>()).remove(warehouse);
            continue;
          }
          long version = (Long) after.get("version");
          // A snapshot read (op r) starts a row's sequence; a change follows it by one.
          if (!"r".equals(op) && last != null && version != last + 1) {
            gaps.add(row + ": " + last + " then " + version);
          }
          versions.put(row, version);
          Map<String, Object> state = new LinkedHashMap<>();
          state.put("on_hand", after.get("on_hand"));
          state.put("reserved", after.get("reserved"));
          state.put("version", version);
          rows.computeIfAbsent(product, k -> new TreeMap<>()).put(warehouse, state);
        }
      }
    }

    Map<String, Object> summary = new LinkedHashMap<>();
    summary.put("records", records);
    summary.put("duplicate_ids", duplicateIds);
    summary.put("version_gaps", gaps);
    System.out.println(JSON.writeValueAsString(summary));
    for (String product : args.getOrDefault("--product", List.of())) {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("product_id", product);
      out.put("warehouses", rows.getOrDefault(product, Map.of()));
      System.out.println(JSON.writeValueAsString(out));
    }
  }

  /** Writer schemas by id, fetched once each from the registry. */
  static final class Registry {
    private final String url;
    private final HttpClient http = HttpClient.newHttpClient();
    private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();

    Registry(String url) {
      this.url = url.replaceAll("/+$", "");
    }

    GenericRecord decode(byte[] value) throws IOException, InterruptedException {
      ByteBuffer buf = ByteBuffer.wrap(value);
      if (value.length < 5 || buf.get() != 0) {
        throw new IOException("not in the Confluent wire format (magic byte 0, schema id, Avro)");
      }
      int schemaId = buf.getInt();
      GenericDatumReader<GenericRecord> reader = readers.get(schemaId);
      if (reader == null) {
        HttpRequest req = HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + schemaId)).build();
        String body = http.send(req, HttpResponse.BodyHandlers.ofString()).body();
        Schema schema = new Schema.Parser().parse(JSON.readTree(body).get("schema").asText());
        reader = new GenericDatumReader<>(schema);
        readers.put(schemaId, reader);
      }
      return reader.read(null, DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, null));
    }
  }

  private static Map<String, List<String>> parse(String[] argv) {
    Map<String, List<String>> out = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      out.computeIfAbsent(argv[i], k -> new ArrayList<>()).add(argv[i + 1]);
    }
    return out;
  }

  private static String one(Map<String, List<String>> args, String name, String dflt) {
    List<String> v = args.get(name);
    return v == null ? dflt : v.get(v.size() - 1);
  }
}
