// The γ explorer's page: plain JavaScript, no library, nothing loaded from the internet.
// The server names models, operators and images by id; this page never sends a file path.
"use strict";

const $ = (id) => document.getElementById(id);
const S = { cfg: null, lo: 0, hi: 1, kind: "linear", values: [], pending: false, inflight: false,
            truthSeq: 0, gamma: null };

function showError(msg) {
  const m = $("message");
  m.textContent = msg;
  m.hidden = false;
}
function clearError() { $("message").hidden = true; $("message").textContent = ""; }
// Enter in a field must not submit the form (the page's CSP allows no inline handler)
$("controls").addEventListener("submit", (e) => e.preventDefault());

async function api(path, body, raw) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": raw ? "application/octet-stream" : "application/json" },
    body: raw ? body : JSON.stringify(body),
  };
  let resp;
  try { resp = await fetch(path, opts); }
  catch (e) { throw new Error("the server does not answer (is `python -m model explore` still running?)"); }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok || data === null) {
    throw new Error((data && data.error) || `the server answered ${resp.status}`);
  }
  return data;
}

const model = () => S.cfg.models.find((m) => m.id === $("model").value);
const opInfo = () => model().operators.find((o) => o.name === $("op").value);
const fmt = (v) => Number(Number(v).toPrecision(4));

function fillModels() {
  const sel = $("model");
  sel.innerHTML = "";
  for (const m of S.cfg.models) sel.add(new Option(m.label, m.id));
}
function fillOps() {
  const sel = $("op"), old = sel.value;
  sel.innerHTML = "";
  for (const o of model().operators) sel.add(new Option(`${o.label} — ${o.title}`, o.name));
  if ([...sel.options].some((o) => o.value === old)) sel.value = old;
}
function fillImages(select) {
  const sel = $("image");
  sel.innerHTML = "";
  for (const im of S.cfg.images) sel.add(new Option(`${im.label} ${im.width}×${im.height}`, im.id));
  if (select) sel.value = select;
}

// ---------------------------------------------------------------- the slider
// Positions 0..1000 over [lo, hi] in the law's space (log for a log-uniform law); integer laws
// step by one; a discrete law (SR's scales) steps through its values.
function setupSlider() {
  const o = opInfo(), s = $("gamma"), extra = $("extrapolate").checked;
  $("gamma-label").textContent = o.has_gamma ? `${o.symbol}` : "γ";
  $("gamma-note").textContent = "";
  if (!o.has_gamma) {
    s.disabled = true; $("extrapolate").disabled = true;
    $("gamma-value").textContent = "—";
    s.setAttribute("aria-valuetext", "no parameter");
    $("gamma-min").textContent = ""; $("gamma-max").textContent = ""; $("gamma-law").textContent = "";
    $("trained-band").style.left = "0%"; $("trained-band").style.width = "100%";
    $("gamma-note").textContent = `${o.name} has no parameter (a fixed-effect operator).`;
    S.gamma = null;
    return;
  }
  s.disabled = false;
  const [tlo, thi] = o.trained, dom = o.domain;
  let lo = tlo, hi = thi;
  S.values = o.values;
  if (o.law === "discrete") {
    S.kind = "discrete"; lo = 0; hi = o.values.length - 1;
    $("extrapolate").disabled = true;
  } else {
    $("extrapolate").disabled = false;
    S.kind = o.law === "log-uniform" ? "log" : (o.law === "integer" ? "int" : "linear");
    if (extra) {
      if (S.kind === "log") { lo = tlo / 4; hi = thi * 4; }
      else { const w = (thi - tlo) / 2; lo = tlo - w; hi = thi + w; }
      if (dom[0] !== null) lo = Math.max(lo, o.domain_open ? (S.kind === "log" ? dom[0] + 1e-9 : dom[0]) : dom[0]);
      if (dom[1] !== null) hi = Math.min(hi, dom[1]);
      if (S.kind === "int") { lo = Math.ceil(lo); hi = Math.floor(hi); }
    }
  }
  S.lo = lo; S.hi = hi;
  if (S.kind === "int" || S.kind === "discrete") { s.min = lo; s.max = hi; s.step = 1; }
  else { s.min = 0; s.max = 1000; s.step = 1; }
  const pos = (g) => (S.kind === "discrete" ? o.values.indexOf(g) / Math.max(1, o.values.length - 1)
                     : (toT(g) - toT(lo)) / (toT(hi) - toT(lo)));
  const a = Math.max(0, pos(tlo)), b = Math.min(1, pos(thi));
  $("trained-band").style.left = `${100 * a}%`;
  $("trained-band").style.width = `${100 * (b - a)}%`;
  $("gamma-min").textContent = S.kind === "discrete" ? o.values[0] : fmt(lo);
  $("gamma-max").textContent = S.kind === "discrete" ? o.values[o.values.length - 1] : fmt(hi);
  $("gamma-law").textContent = `${o.law} · trained ${fmt(tlo)}–${fmt(thi)} (green)`;
  const keep = S.gamma !== null && S.gamma >= lo && S.gamma <= hi ? S.gamma
    : o.test_gammas[Math.floor(o.test_gammas.length / 2)];
  setSliderTo(keep);
  if (!o.uses_gamma) $("gamma-note").textContent =
    `this model is blind to ${o.symbol}: the slider changes the degraded input only.`;
}
function toT(g) { return S.kind === "log" ? Math.log(g) : g; }
function gammaAtSlider() {
  const s = $("gamma"), v = Number(s.value);
  if (S.kind === "discrete") return S.values[v];
  if (S.kind === "int") return v;
  const t = toT(S.lo) + (toT(S.hi) - toT(S.lo)) * (v / 1000);
  return fmt(S.kind === "log" ? Math.exp(t) : t);
}
function setSliderTo(g) {
  const s = $("gamma");
  if (S.kind === "discrete") s.value = Math.max(0, S.values.indexOf(g));
  else if (S.kind === "int") s.value = Math.round(g);
  else s.value = Math.round(1000 * (toT(g) - toT(S.lo)) / (toT(S.hi) - toT(S.lo)));
  showGamma();
}
function showGamma() {
  const o = opInfo(), g = gammaAtSlider();
  S.gamma = g;
  $("gamma-value").textContent = `${o.symbol} = ${g}`;
  $("gamma").setAttribute("aria-valuetext", `${o.symbol} = ${g}`);
}

// ---------------------------------------------------------------- rendering
function request() {
  return { model: $("model").value, op: $("op").value, image: $("image").value,
           gamma: opInfo().has_gamma ? S.gamma : null, extrapolate: $("extrapolate").checked };
}

async function render() {
  if (S.inflight) { S.pending = true; return; }
  S.inflight = true; S.pending = false;
  document.body.dataset.busy = "1";
  const req = request(), t0 = performance.now();
  req.with_input = $("input-img").dataset.image !== req.image;  // a new image: send it
  try {
    const r = await api("/api/render", req);
    clearError();
    const img = $("net-img");
    img.src = r.output;
    Object.assign(img.dataset, { gamma: r.gamma === null ? "" : String(r.gamma), model: r.model,
                                 op: r.op, image: r.image });
    if (r.input) { $("input-img").src = r.input; $("input-img").dataset.image = r.image; }
    const rt = Math.round(performance.now() - t0);
    $("net-cap").textContent = r.path === "re-tune"
      ? `network · ${r.net_ms} ms re-tune, re-runs ${r.retune_runs} (full pass ${r.full_ms} ms) · round trip ${rt} ms`
      : `network · ${r.net_ms} ms full pass · round trip ${rt} ms`;
    if (r.note) $("gamma-note").textContent = r.note;
  } catch (e) {
    showError(e.message);
  }
  S.inflight = false;
  if (S.pending) { render(); return; }
  delete document.body.dataset.busy;
  truth();
}

async function truth() {
  const seq = ++S.truthSeq, req = request();
  $("truth-cap").textContent = "operator · computing…";
  try {
    const r = await api("/api/truth", req);
    if (seq !== S.truthSeq) return;
    $("truth-img").src = r.truth;
    $("diff-img").src = r.diff;
    $("truth-img").dataset.gamma = r.gamma === null ? "" : String(r.gamma);
    $("truth-cap").textContent = `operator · ${r.op_ms} ms${r.cached ? " (cached)" : ""}`;
    const sc = (p, s) => (p === null ? "identical" : `PSNR ${p} dB · SSIM ${s}`);
    $("diff-cap").textContent = `|network − operator| (0–${r.diff_full_scale} levels) · ` +
      `${sc(r.psnr, r.ssim)} (input: ${sc(r.input_psnr, r.input_ssim)})`;
    $("status").textContent = `${req.op} at ${req.gamma === null ? "its fixed setting" : req.gamma}: done`;
    document.body.dataset.ready = `${req.model}|${req.op}|${req.image}|${req.gamma}`;
  } catch (e) {
    if (seq === S.truthSeq) { showError(e.message); $("truth-cap").textContent = "operator"; }
  }
}

// ---------------------------------------------------------------- events
async function onUpload() {
  const f = $("upload").files[0];
  if (!f) return;
  if (f.size > S.cfg.limits.bytes) {
    showError(`${f.name} is larger than ${S.cfg.limits.bytes / 1048576} MiB`);
    $("upload").value = "";
    return;
  }
  $("status").textContent = `uploading ${f.name}…`;
  try {
    const r = await api(`/api/upload?name=${encodeURIComponent(f.name)}`, await f.arrayBuffer(), true);
    S.cfg.images.push(r);
    fillImages(r.id);
    clearError();
   
    render();
  } catch (e) {
    showError(`upload refused: ${e.message}`);
    $("status").textContent = "";
  }
  $("upload").value = "";
}

async function init() {
  try { S.cfg = await api("/api/config"); }
  catch (e) { showError(e.message); return; }
  fillModels(); fillOps(); fillImages();
  setupSlider();
  $("model").addEventListener("change", () => { fillOps(); S.gamma = null; setupSlider(); render(); });
  $("op").addEventListener("change", () => { S.gamma = null; setupSlider(); render(); });
  $("image").addEventListener("change", () => { render(); });
  $("extrapolate").addEventListener("change", () => { setupSlider(); render(); });
  $("gamma").addEventListener("input", () => { showGamma(); render(); });
  $("gamma").addEventListener("change", () => { showGamma(); render(); });
  $("upload").addEventListener("change", onUpload);
  render();
}
init();
