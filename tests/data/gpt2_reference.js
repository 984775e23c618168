// Reference GPT-2 token ids for tests/data/test_tokenizers.cpp.
// usage: node gpt2_reference.js PACKAGE_DIR TEXTS_JSON
//   PACKAGE_DIR: the npm package gpt-3-encoder@1.1.4 (scripts/fetch-gpt2-tokenizer.sh installs it)
//   TEXTS_JSON:  a file holding a JSON array of strings
// Prints a JSON array holding, for each string, the ids of the package's encode().
'use strict';
const fs = require('fs');
const path = require('path');

const [pkgDir, textsFile] = process.argv.slice(2);
if (!pkgDir || !textsFile) {
  console.error('usage: node gpt2_reference.js PACKAGE_DIR TEXTS_JSON');
  process.exit(2);
}
let encoder;
try {
  encoder = require(path.resolve(pkgDir));
} catch (e) {
  console.error(`cannot load gpt-3-encoder from ${pkgDir} (run scripts/fetch-gpt2-tokenizer.sh): ${e.message}`);
  process.exit(3);
}
const texts = JSON.parse(fs.readFileSync(textsFile, 'utf-8'));
process.stdout.write(JSON.stringify(texts.map((t) => encoder.encode(t))) + '\n');
