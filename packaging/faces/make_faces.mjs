#!/usr/bin/env node
// Synthetic cartoon faces for Automodulator Studio (SPEC §3 "Synthetic faces").
// Draws random faces with facesjs, renders them with resvg and writes square PNG crops of the head
// (NNNNNN.png) plus attributes.jsonl: one JSON line per face with its ground-truth attributes.
// Deterministic: Math.random is replaced by a seeded PRNG (mulberry32), so --seed reproduces a set.
//
//   node make_faces.mjs --count N --size S --seed K --out DIR [--start I]
// Prints "progress DONE TOTAL" lines on stdout for the caller's progress bar.
import fs from "node:fs";
import path from "node:path";
import { generate, faceToSvgString } from "facesjs";
import { Resvg } from "@resvg/resvg-js";

function parseArgs(argv) {
  const args = { count: 100, size: 64, seed: 0, out: "", start: 0 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    const value = argv[++i];
    if (value === undefined) throw new Error(`option ${argv[i - 1]} needs a value`);
    args[key] = key === "out" ? value : Number(value);
  }
  if (!args.out) throw new Error("--out DIR is required");
  if (!Number.isInteger(args.count) || args.count < 1) throw new Error("--count must be a positive integer");
  if (!Number.isInteger(args.size) || args.size < 4 || args.size > 2048) throw new Error("--size must be 4..2048");
  if (!Number.isInteger(args.seed) || args.seed < 0) throw new Error("--seed must be a non-negative integer");
  return args;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Each face gets its own PRNG stream (seed, index), so face i is the same whatever --count is.
function faceRandom(seed, index) {
  const mix = mulberry32((seed * 0x9e3779b1) ^ (index * 0x85ebca6b) ^ 0x1234567);
  return mulberry32(Math.floor(mix() * 4294967296));
}

// The facesjs viewBox is 400×600: hair top ≈ y 80, chin ≈ y 500. This square frames the head like FFHQ.
const CROP = { x: -20, y: 60, size: 440 };
const GENDERS = ["male", "female"];
const RACES = ["white", "black", "asian", "brown"];

function attributesOf(face, gender, race) {
  return {
    gender,
    race,
    head: face.head.id,
    fatness: face.fatness,
    skin_color: face.body.color,
    hair: face.hair.id,
    hair_color: face.hair.color,
    hair_bg: face.hairBg.id,
    hair_flip: face.hair.flip,
    eye: face.eye.id,
    eye_angle: face.eye.angle,
    eyebrow: face.eyebrow.id,
    eyebrow_angle: face.eyebrow.angle,
    ear: face.ear.id,
    nose: face.nose.id,
    nose_size: face.nose.size,
    mouth: face.mouth.id,
    glasses: face.glasses.id,
    facial_hair: face.facialHair.id,
    accessories: face.accessories.id,
    eye_line: face.eyeLine.id,
    smile_line: face.smileLine.id,
    misc_line: face.miscLine.id,
    jersey: face.jersey.id,
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.out, { recursive: true });
  const lines = [];
  const originalRandom = Math.random;
  const total = args.count;
  const step = Math.max(1, Math.floor(total / 100));
  for (let i = args.start; i < args.start + args.count; i++) {
    const rand = faceRandom(args.seed, i);
    Math.random = rand;
    const gender = GENDERS[Math.floor(rand() * GENDERS.length)];
    const race = RACES[Math.floor(rand() * RACES.length)];
    // Team-coloured jerseys only add clutter; keep the colours neutral and seeded.
    const face = generate({ teamColors: ["#89bfd3", "#7a1319", "#07364f"] }, { gender, race });
    Math.random = originalRandom;
    let svg = faceToSvgString(face);
    svg = svg.replace(
      /<svg([^>]*)width="100%" height="100%" viewBox="0 0 400 600"([^>]*)>/,
      `<svg$1width="${CROP.size}" height="${CROP.size}" viewBox="${CROP.x} ${CROP.y} ${CROP.size} ${CROP.size}"$2>` +
        `<rect x="${CROP.x}" y="${CROP.y}" width="${CROP.size}" height="${CROP.size}" fill="#ffffff"/>`,
    );
    const png = new Resvg(svg, { fitTo: { mode: "width", value: args.size }, background: "#ffffff" }).render().asPng();
    const name = String(i).padStart(6, "0") + ".png";
    fs.writeFileSync(path.join(args.out, name), png);
    lines.push(JSON.stringify({ file: name, index: i, seed: args.seed, ...attributesOf(face, gender, race), face }));
    const done = i - args.start + 1;
    if (done % step === 0 || done === total) process.stdout.write(`progress ${done} ${total}\n`);
  }
  const jsonl = path.join(args.out, "attributes.jsonl");
  fs.writeFileSync(jsonl + ".tmp", lines.join("\n") + "\n");
  fs.renameSync(jsonl + ".tmp", jsonl);
}

try {
  main();
} catch (e) {
  process.stderr.write(`make_faces: ${e.message}\n`);
  process.exit(1);
}
