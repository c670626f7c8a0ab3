// Validates an AsyncAPI document with the AsyncAPI parser, Avro payloads
// included (their .avsc files resolved relative to the document): prints
// every diagnostic and exits 1 on an error, so `make test` fails on a
// document other tools would refuse. The parser checks an Avro payload only
// where it is written inline; ours are references to the .avsc files, so
// each resolved payload is also compiled with avsc (the Avro library the
// parser itself uses), which refuses what an Avro reader would.
const fs = require('fs');
const path = require('path');
const { Parser, fromFile } = require('@asyncapi/parser');
const { AvroSchemaParser } = require('@asyncapi/avro-schema-parser');
const avsc = require('avsc');

async function main() {
  const file = path.resolve(process.argv[2]);
  const parser = new Parser();
  parser.registerSchemaParser(AvroSchemaParser());
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const m of document ? document.allMessages().all() : []) {
    const payload = m.payload() && m.payload().json();
    const original = payload && payload['x-parser-original-payload'];
    if (!original || !/avro/.test(payload.schemaFormat || '')) {
      continue;
    }
    try {
      avsc.Type.forSchema(original);
    } catch (err) {
      errors.push({ severity: 0, code: 'avro-schema', message: err.message, path: ['messages', m.id()] });
    }
  }
  for (const d of [...diagnostics, ...errors.filter((e) => e.code === 'avro-schema')]) {
    const level = ['error', 'warning', 'info', 'hint'][d.severity] || d.severity;
    console.log(`${level}: ${d.code}: ${d.message} at ${d.path.join('.')}`);
  }
  if (!document || errors.length > 0) {
    console.error(`${path.basename(file)}: ${errors.length} error(s)`);
    process.exit(1);
  }
  const channels = document.channels().all().map((c) => c.address());
  console.log(`${path.basename(file)}: valid AsyncAPI ${document.version()}, channels ${channels.join(', ')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
