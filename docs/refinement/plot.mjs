// Draws docs/refinement/tradeoff.png from docs/refinement/results.json (written by tradeoff.sh):
// reconstruction gain against what mixing, attribute transfer and attribute edits lose, one point per refinement
// setting. Needs only the npm packages the bootstrap installs (packaging/faces: @resvg/resvg-js).
//   node docs/refinement/plot.mjs [results.json] [out.png]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'packaging', 'faces', 'package.json'));
const { Resvg } = require('@resvg/resvg-js');

const input = process.argv[2] ?? join(here, 'results.json');
const output = process.argv[3] ?? join(here, 'tradeoff.png');
const rows = JSON.parse(readFileSync(input, 'utf8')).settings;
const base = rows.find((r) => r.steps === 0);
if (!base) throw new Error('results.json needs the encoder-only row (steps 0)');

const W = 1650, H = 540, M = { l: 70, r: 110, t: 40, b: 60 }, gap = 85;
const pw = (W - M.l - M.r - 2 * gap) / 3, ph = H - M.t - M.b;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const nice = (lo, hi) => {
  const pad = (hi - lo) * 0.12 || 1;
  return [lo - pad, hi + pad];
};
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="13">`;
svg += `<rect width="${W}" height="${H}" fill="white"/>`;

function panel(x0, key, label, better) {
  const xs = rows.map((r) => r[key]), ys = rows.map((r) => r.psnr - base.psnr);
  const [xl, xh] = nice(Math.min(...xs), Math.max(...xs));
  const [yl, yh] = nice(Math.min(0, ...ys), Math.max(...ys));
  const X = (v) => x0 + ((v - xl) / (xh - xl)) * pw, Y = (v) => M.t + ph - ((v - yl) / (yh - yl)) * ph;
  svg += `<rect x="${x0}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`;
  for (let i = 0; i <= 4; i++) {
    const xv = xl + ((xh - xl) * i) / 4, yv = yl + ((yh - yl) * i) / 4;
    svg += `<text x="${X(xv)}" y="${M.t + ph + 18}" text-anchor="middle">${xv.toFixed(key === 'swd' ? 1 : 3)}</text>`;
    svg += `<text x="${x0 - 8}" y="${Y(yv) + 4}" text-anchor="end">${yv.toFixed(1)}</text>`;
    svg += `<line x1="${x0}" x2="${x0 + pw}" y1="${Y(yv)}" y2="${Y(yv)}" stroke="#eee"/>`;
  }
  svg += `<text x="${x0 + pw / 2}" y="${H - 15}" text-anchor="middle">${esc(label)} (${esc(better)})</text>`;
  svg += `<text transform="translate(${x0 - 50},${M.t + ph / 2}) rotate(-90)" text-anchor="middle">PSNR gain over the encoder's code (dB)</text>`;
  // The 10% budget the default must stay within.
  const limit = key === 'swd' ? base[key] * 1.1 : base[key] * 0.9;  // 10% worse than the encoder's codes
  if (limit > xl && limit < xh)
    svg += `<line x1="${X(limit)}" x2="${X(limit)}" y1="${M.t}" y2="${M.t + ph}" stroke="#c33" stroke-dasharray="5,4"/>` +
      `<text x="${X(limit) + 4}" y="${M.t + 14}" fill="#c33">10% of the encoder's</text>`;
  for (const [i, r] of rows.entries()) {
    const colour = r.offsets ? '#1f6fb4' : r.steps === 0 ? '#222' : '#e07b00';
    svg += `<circle cx="${X(xs[i])}" cy="${Y(ys[i])}" r="${r.default ? 8 : 5}" fill="${colour}"${r.default ? ' stroke="#000" stroke-width="2"' : ''}/>`;
    svg += `<text x="${X(xs[i]) + 9}" y="${Y(ys[i]) - 7}" font-size="11">${esc(r.label)}</text>`;
  }
}
panel(M.l, 'swd', 'SWD×1e3 of coarse/intermediate/fine mixes', 'lower is better');
panel(M.l + pw + gap, 'follow', 'attribute follow rate of scale mixes', 'higher is better');
panel(M.l + 2 * (pw + gap), 'flip', 'attribute edits: mean target flip rate', 'higher is better');
svg += `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">Refinement: fidelity against editability (bundled model, held-out faces; black: encoder, orange: codes only, blue: codes + style offsets; ringed: default)</text>`;
svg += '</svg>';
const png = new Resvg(svg, { font: { loadSystemFonts: true } }).render().asPng();
writeFileSync(output, png);
console.log(`wrote ${output} (${rows.length} settings)`);
