// The explanation page: draws, sends the input and the chosen rules to /api/explain, and
// shows what comes back. Every number on the page is computed by the server (the relevance
// library); this script only collects the controls and draws the answers.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#7f7f7f"];
const RULES = ["lrp0", "epsilon=1e-6", "epsilon=0.25", "gamma=0.25", "gamma=0.5", "alpha-beta=2,1", "zplus", "flat", "wsquare", "zbox"];
const PRESETS = {
  "epsilon-gamma-box": { first: "zbox", "lower-convolutions": "gamma=0.25", "upper-convolutions": "gamma=0.25", dense: "epsilon=1e-6" },
  layered: { first: "zbox", "lower-convolutions": "gamma=0.25", "upper-convolutions": "epsilon=0.25", dense: "lrp0" },
  "epsilon-plus": { first: "zplus", "lower-convolutions": "zplus", "upper-convolutions": "zplus", dense: "epsilon=1e-6" },
  "epsilon-alpha2-beta1": { first: "alpha-beta=2,1", "lower-convolutions": "alpha-beta=2,1", "upper-convolutions": "alpha-beta=2,1", dense: "epsilon=1e-6" },
};
const FORMULAS = {
  lrp0: "R_i = Σ_j a_i w_ij / z_j · R_j, z_j = Σ_i a_i w_ij (equals gradient × input on ReLU networks)",
  epsilon: "R_i = Σ_j a_i w_ij / (z_j + ε·sign(z_j)) · R_j: ε absorbs weak or contradictory contributions",
  gamma: "R_i = Σ_j a_i (w_ij + γ w_ij⁺) / Σ_i a_i (w_ij + γ w_ij⁺) · R_j: positive contributions favoured",
  alphabeta: "R_i = Σ_j (α (a_i w_ij)⁺ / z_j⁺ − β (a_i w_ij)⁻ / z_j⁻) R_j, α − β = 1",
  composite: "a rule per layer group: the table under “Composite” (z^B at the pixels uses the input's value range)",
  deeplift: "R_i = m_i (x_i − x̄_i), multipliers by the Rescale rule Δy/Δx; Σ R = f(x) − f(x̄) exactly",
};

const state = {
  models: [], methods: {}, model: 0, compare: null,
  input: null, baselineDrawing: null,
  seq: 0, shown: 0, busy: false, pending: false,
};

// ---------------------------------------------------------------- drawing
const canvas = $("draw");
const ctx = canvas.getContext("2d");
let drawing = false, last = null;

function clearCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

function stroke(to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...(last || to));
  ctx.lineTo(...to);
  ctx.stroke();
  last = to;
}

canvas.addEventListener("pointerdown", (e) => {
  drawing = true;
  last = null;
  canvas.setPointerCapture(e.pointerId);
  stroke(point(e));
  useDrawing();
});
canvas.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  stroke(point(e));
  useDrawing();
});
const stop = () => { drawing = false; last = null; useDrawing(); };
canvas.addEventListener("pointerup", stop);
canvas.addEventListener("pointercancel", stop);
canvas.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });

/** The canvas as grey bytes, halved to 140 × 140 (the server centres and scales it). */
function drawingData() {
  const w = canvas.width, h = canvas.height, px = ctx.getImageData(0, 0, w, h).data;
  const W = w / 2, H = h / 2, out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) s += px[((2 * y + dy) * w + 2 * x + dx) * 4];
    out[y * W + x] = s / 4;
  }
  let bin = "";
  for (let i = 0; i < out.length; i += 8192) bin += String.fromCharCode.apply(null, out.subarray(i, i + 8192));
  return { width: W, height: H, data: btoa(bin) };
}

function useDrawing() {
  state.input = { drawing: drawingData() };
  $("sample").value = "";
  schedule();
}

$("clear").addEventListener("click", () => { clearCanvas(); state.input = null; showEmpty(); });
$("sample").addEventListener("change", (e) => {
  if (e.target.value === "") return;
  clearCanvas();
  state.input = { sample: Number(e.target.value) };
  schedule();
});

// ---------------------------------------------------------------- images
function useFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { clearCanvas(); state.input = { image: reader.result }; $("sample").value = ""; schedule(); };
  reader.readAsDataURL(file);
}
$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });

// ---------------------------------------------------------------- controls
function sliders() {
  const eps = Math.pow(10, Number($("epsilon").value));
  const epsText = eps < 0.01 ? eps.toExponential(0) : String(Number(eps.toPrecision(2)));
  const gamma = Number($("gamma").value), alpha = Number($("alpha").value);
  $("epsilon-value").textContent = epsText;
  $("gamma-value").textContent = String(gamma);
  $("alpha-value").textContent = String(alpha);
  return { epsText, gamma, alpha };
}

function compositeSpec() {
  const groups = [...document.querySelectorAll("#composite select[data-group]")].map((s) => ({ select: s.dataset.group, rule: s.value }));
  return { default: "epsilon=1e-6", groups };
}

function applyPreset() {
  const p = PRESETS[$("preset").value];
  if (!p) return;
  for (const s of document.querySelectorAll("#composite select[data-group]")) s.value = p[s.dataset.group];
}

function methodList() {
  const { epsText, gamma, alpha } = sliders();
  return [
    { title: "LRP-0", key: "lrp0", spec: { name: "lrp0" } },
    { title: `LRP-ε (ε = ${epsText})`, key: "epsilon", spec: { name: `epsilon=${epsText}` } },
    { title: `LRP-γ (γ = ${gamma})`, key: "gamma", spec: { name: `gamma=${gamma}` } },
    { title: `LRP-αβ (α = ${alpha}, β = ${alpha - 1})`, key: "alphabeta", spec: { name: `alpha-beta=${alpha},${alpha - 1}` } },
    { title: `Composite (${$("preset").selectedOptions[0].textContent})`, key: "composite", spec: { composite: compositeSpec() } },
    { title: "DeepLIFT (Rescale)", key: "deeplift", spec: { name: "deeplift" } },
  ];
}

for (const id of ["epsilon", "gamma", "alpha", "target", "versus", "layers", "flipping"]) $(id).addEventListener("input", schedule);
$("preset").addEventListener("change", () => { applyPreset(); schedule(); });
for (const s of document.querySelectorAll("#composite select[data-group]")) s.addEventListener("change", () => { $("preset").value = "custom"; schedule(); });
$("baseline").addEventListener("change", () => {
  $("draw-baseline").hidden = $("baseline").value !== "drawn";
  schedule();
});
$("draw-baseline").addEventListener("click", () => {
  state.baselineDrawing = drawingData();
  $("baseline-note").textContent = "reference taken from the drawing; draw the input now";
  clearCanvas();
});
$("model").addEventListener("change", () => { state.model = Number($("model").value); setupModel(); schedule(); });
$("compare").addEventListener("change", () => { state.compare = $("compare").value === "" ? null : Number($("compare").value); schedule(); });

// ---------------------------------------------------------------- requests
/** Debounced: one request in flight; the newest settings go out when it returns. */
function schedule() {
  if (!state.input) return;
  if (state.busy) { state.pending = true; return; }
  send();
}

function body(model) {
  const baseline = { kind: $("baseline").value };
  if (baseline.kind === "drawn") baseline.drawing = state.baselineDrawing || drawingData();
  const target = {};
  if ($("target").value !== "") target.class = Number($("target").value);
  if ($("versus").value !== "") target.versus = Number($("versus").value);
  return {
    model, input: state.input, methods: methodList().map((m) => m.spec), target, baseline,
    layers: $("layers").checked, flipping: $("flipping").checked, npy: true,
  };
}

async function post(model) {
  const r = await fetch("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body(model)) });
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

async function send() {
  state.busy = true;
  state.pending = false;
  const seq = ++state.seq;
  const t0 = performance.now();
  const models = [state.model].concat(state.compare !== null && state.compare !== state.model ? [state.compare] : []);
  try {
    const answers = await Promise.all(models.map(post));
    if (seq > state.shown) {
      state.shown = seq;
      $("error").hidden = true;
      show(models, answers, performance.now() - t0);
    }
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
  } finally {
    state.busy = false;
    if (state.pending) send();
  }
}

// ---------------------------------------------------------------- answers
function img(b64) { return "data:image/png;base64," + b64; }

function paint(target, b64) {
  const im = new Image();
  im.onload = () => {
    target.width = im.width;
    target.height = im.height;
    target.getContext("2d").drawImage(im, 0, 0);
    target.dataset.ready = String(state.shown);
  };
  im.src = img(b64);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function showEmpty() {
  $("prediction").textContent = "No input yet.";
  $("top5").replaceChildren();
  $("bars").replaceChildren();
  $("results").replaceChildren();
  $("flip-panel").hidden = true;
  $("seen").removeAttribute("src");
}

function showPrediction(p) {
  $("seen").src = img(p.input_png);
  $("prediction").textContent = `Predicted: ${p.label} (logit ${p.scores[p.class].logit.toFixed(2)}, p = ${(100 * p.scores[p.class].probability).toFixed(1)} %)`;
  $("note").textContent = p.note || "";
  $("top5").replaceChildren(...p.top.map((t) => el("li", { text: `${t.label} — ${(100 * t.probability).toFixed(1)} % (logit ${t.logit.toFixed(2)})` })));
  const shown = p.scores.length > 20 ? p.top : p.scores;
  $("bars").replaceChildren(...shown.map((s) => {
    const bar = el("div", { class: "fill" + (s.class === p.class ? " best" : "") });
    bar.style.width = `${(100 * s.probability).toFixed(1)}%`;
    return el("div", { class: "barrow", title: `logit ${s.logit.toFixed(3)}` }, el("span", { text: s.label }), el("div", { class: "track" }, bar), el("span", { text: `${(100 * s.probability).toFixed(0)}%` }));
  }));
}

function card(m, r, modelName) {
  const heat = el("canvas", { class: "heatmap", "data-method": m.key, "aria-label": `${m.title} heatmap` });
  paint(heat, r.heatmap_png);
  const links = el("div", { class: "links" },
    el("a", { href: img(r.heatmap_png), download: `${m.key}_heatmap.png`, text: "heatmap PNG" }),
    r.overlay_png ? el("a", { href: img(r.overlay_png), download: `${m.key}_overlay.png`, text: "overlay PNG" }) : null,
    r.npy ? el("a", { href: "data:application/octet-stream;base64," + r.npy, download: `${m.key}_relevance.npy`, text: "relevance .npy" }) : null);
  const info = state.methods[r.method.split("=")[0]];
  const formula = el("details", {}, el("summary", { text: "formula" }), el("p", { text: FORMULAS[m.key] }),
    el("p", { class: "hint", text: info ? `${info.what}. Use: ${info.when}.` : r.method }));
  const stats = el("p", { class: "stats", text: `total ${r.total.toFixed(3)} · Σ R ${r.sum.toFixed(3)} · gap ${r.gap.toExponential(1)}` });
  const c = el("article", { class: "card" }, el("h3", { text: m.title }), heat, r.overlay_png ? el("img", { class: "overlay", src: img(r.overlay_png), alt: `${m.title} over the input` }) : null, stats, links, formula);
  if (r.layers) {
    const strip = el("div", { class: "layers" }, ...r.layers.map((l) => el("figure", {}, el("img", { src: img(l.png), alt: l.name, title: `${l.name} ${JSON.stringify(l.shape)} Σ ${l.sum.toFixed(3)}` }), el("figcaption", { text: `${l.name} Σ${l.sum.toFixed(2)}` }))));
    c.append(strip);
  }
  if (modelName) c.dataset.model = modelName;
  return c;
}

function show(models, answers, ms) {
  const main = answers[0];
  showPrediction(main.prediction);
  const list = methodList();
  const blocks = answers.map((a, k) => {
    const name = state.models[models[k]].name;
    const head = el("h3", { class: "model-head", text: `${name}: predicts ${a.prediction.label} — explaining ${state.models[models[k]].labels[a.class]}${a.versus !== null ? " against " + state.models[models[k]].labels[a.versus] : ""}` });
    return el("div", { class: "block" }, answers.length > 1 ? head : null, el("div", { class: "cards" }, ...a.results.map((r, i) => card(list[i], r, name))));
  });
  $("results").replaceChildren(...blocks);
  const server = answers.map((a) => a.server_ms.toFixed(1)).join(" + ");
  $("timing").textContent = `server ${server} ms, round trip ${ms.toFixed(0)} ms`;
  $("baseline-note").textContent = `DeepLIFT reference: ${main.baseline}`;
  chart(list, main);
}

function chart(list, a) {
  const svg = $("flip-chart");
  if (!a.random_flipping) { $("flip-panel").hidden = true; return; }
  $("flip-panel").hidden = false;
  const curves = a.results.map((r, i) => ({ name: list[i].title, f: r.flipping }));
  curves.push({ name: "random order", f: a.random_flipping });
  const all = curves.flatMap((c) => c.f.curve);
  const lo = Math.min(...all), hi = Math.max(...all), span = hi - lo || 1;
  const X = (f) => 40 + 240 * f, Y = (v) => 200 - 180 * (v - lo) / span;
  const parts = [`<line x1="40" y1="200" x2="280" y2="200" stroke="#888"/><line x1="40" y1="20" x2="40" y2="200" stroke="#888"/>`,
    `<text x="160" y="216" font-size="10" text-anchor="middle">fraction of pixels removed</text>`,
    `<text x="36" y="24" font-size="9" text-anchor="end">${hi.toFixed(1)}</text><text x="36" y="200" font-size="9" text-anchor="end">${lo.toFixed(1)}</text>`];
  curves.forEach((c, i) => {
    const color = i === curves.length - 1 ? "#999" : COLORS[i % COLORS.length];
    const pts = c.f.curve.map((v, k) => `${X(c.f.fraction[k]).toFixed(1)},${Y(v).toFixed(1)}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"${i === curves.length - 1 ? ' stroke-dasharray="4 3"' : ""}/>`);
    parts.push(`<rect x="290" y="${22 + 16 * i}" width="10" height="3" fill="${color}"/><text x="304" y="${27 + 16 * i}" font-size="9">${c.name.replace(/ \(.*/, "")} ${c.f.aopc.toFixed(2)}</text>`);
  });
  parts.push(`<text x="290" y="14" font-size="9" font-weight="bold">AOPC</text>`);
  svg.innerHTML = parts.join("");
}

// ---------------------------------------------------------------- setup
function options(select, items, keepFirst = true) {
  const first = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(...first, ...items.map(([v, t]) => el("option", { value: v, text: t })));
}

function setupModel() {
  const m = state.models[state.model];
  $("draw-area").hidden = !m.drawable;
  $("drop").hidden = !m.images;
  options($("sample"), m.samples.map((s, i) => [i, s]));
  const classes = m.labels.map((l, i) => [i, l === String(i) ? l : `${i}: ${l}`]);
  options($("target"), classes);
  options($("versus"), classes);
  $("baseline").querySelector('[value="mean"]').textContent = `mean (${m.mean_baseline})`;
  $("baseline").querySelector('[value="drawn"]').disabled = !m.drawable;
  const rules = RULES.filter((r) => r !== "zbox" || m.bounds);
  for (const s of document.querySelectorAll("#composite select[data-group]")) options(s, rules.map((r) => [r, r]), false);
  applyPreset();
  if (!m.bounds) for (const s of document.querySelectorAll("#composite select[data-group]")) if (!s.value) s.value = "epsilon=0.25";
  state.input = null;
  showEmpty();
  clearCanvas();
}

async function init() {
  clearCanvas();
  sliders();
  const [models, methods] = await Promise.all([fetch("/api/models").then((r) => r.json()), fetch("/api/methods").then((r) => r.json())]);
  state.models = models.models;
  for (const m of methods.methods) state.methods[m.name.split("[")[0]] = m;
  options($("model"), state.models.map((m) => [m.id, m.name]), false);
  options($("compare"), state.models.map((m) => [m.id, m.name]));
  $("compare").disabled = state.models.length < 2;
  setupModel();
  document.body.dataset.ready = "1";
}

init().catch((e) => { $("error").textContent = `cannot load the page's data: ${e.message}`; $("error").hidden = false; });
