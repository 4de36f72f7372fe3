// The page: filters, the grid of thumbnails with their labels drawn over them, the sample panel,
// keyboard editing (class keys, x, u, arrows), box editing in the panel, and Save as.
// Every edit is sent to the server at once (it appends it to the edits file), so nothing is lost
// when the browser closes; undo sends the value the field had before.

import { api } from "./api.js";
import { el, overlay } from "./overlay.js";

const PAGE = 100;
const RESERVED = new Set(["x", "u", "n", "p", "b"]);
const KEY_POOL = "1234567890acdefghijklmoqrstvwyz";
const $ = (id) => document.getElementById(id);

const state = {
  info: null, filters: {}, offset: 0, total: 0, cards: [], selected: 0,
  panel: null, box: -1, drawClass: null, undo: [], keys: new Map(), keyOf: new Map(),
};

// --- helpers ------------------------------------------------------------------------------
function status(text, error = false) {
  const node = $("status");
  node.textContent = text;
  node.classList.toggle("error", error);
}

function effective(card) {
  const edit = card.edit || {};
  return {
    label: "label" in edit ? edit.label : card.label,
    objects: "objects" in edit ? edit.objects : (card.objects || null),
    remove: edit.remove === true,
  };
}

function assignKeys(classes) {
  const used = new Set(RESERVED);
  for (const name of classes) {
    if (name.length === 1 && !used.has(name) && /^[0-9a-z]$/.test(name)) { state.keys.set(name, name); used.add(name); }
  }
  const pool = [...KEY_POOL].filter((k) => !used.has(k));
  for (const name of classes) {
    if ([...state.keys.values()].includes(name)) continue;
    const key = pool.shift();
    if (key === undefined) break;
    state.keys.set(key, name);
  }
  for (const [key, name] of state.keys) state.keyOf.set(name, key);
}

function text(tag, content, cls) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (cls) node.className = cls;
  return node;
}

function row(cells, onClick, on = false) {
  const tr = document.createElement("tr");
  for (const [content, cls] of cells) tr.appendChild(text("td", String(content), cls));
  if (onClick) { tr.classList.add("link"); tr.addEventListener("click", onClick); }
  if (on) tr.classList.add("on");
  return tr;
}

// --- filters and counts -------------------------------------------------------------------
function readFilters() {
  return {
    split: $("f-split").value, label: $("f-label").value, finding: $("f-finding").value,
    augmented: $("f-augmented").value, q: $("f-q").value.trim(),
    issues: $("f-issues").checked, max_rank: $("f-issues").checked ? $("f-max-rank").value : "",
    disagree: $("f-disagree").checked, edited: $("f-edited").checked,
  };
}

function setFilter(id, value) {
  $(id).value = $(id).value === value ? "" : value;
  applyFilters();
}

async function applyFilters() {
  state.filters = readFilters();
  state.offset = 0;
  state.selected = 0;
  await Promise.all([loadPage(), loadStats()]);
}

async function loadStats() {
  try {
    const stats = await api.stats(state.filters);
    $("total").textContent = `${stats.total.toLocaleString()} samples`;
    const splits = $("split-counts"), classes = $("class-counts"), findings = $("finding-counts");
    splits.replaceChildren(...Object.entries(stats.splits).map(([name, n]) =>
      row([[name], [n.toLocaleString(), "n"]], () => setFilter("f-split", name), state.filters.split === name)));
    classes.replaceChildren(...Object.entries(stats.classes).map(([name, n]) =>
      row([[name], [n.toLocaleString(), "n"]], () => setFilter("f-label", name), state.filters.label === name)));
    findings.replaceChildren(...Object.entries(stats.findings).map(([code, n]) =>
      row([[code], [n.toLocaleString(), "n"]], () => setFilter("f-finding", code), state.filters.finding === code)));
    if (stats.augmented) findings.appendChild(row([["augmented"], [stats.augmented.toLocaleString(), "n"]]));
  } catch (err) {
    status(err.message, true);
  }
}

// --- the grid -----------------------------------------------------------------------------
async function loadPage() {
  try {
    const page = await api.samples(state.filters, state.offset, PAGE);
    state.total = page.total;
    state.cards = page.samples;
    state.selected = Math.min(state.selected, Math.max(state.cards.length - 1, 0));
    renderGrid();
    const end = state.offset + state.cards.length;
    $("range").textContent = state.total
      ? `${(state.offset + 1).toLocaleString()}–${end.toLocaleString()} of ${state.total.toLocaleString()}`
      : "no samples match";
    $("prev").disabled = state.offset === 0;
    $("next").disabled = end >= state.total;
    status("");
  } catch (err) {
    status(err.message, true);
  }
}

function caption(card) {
  const now = effective(card);
  const node = document.createElement("div");
  node.className = "caption";
  node.appendChild(text("span", card.id + " "));
  const label = now.label ?? (now.objects ? `${now.objects.length} obj` : "—");
  node.appendChild(text("b", label));
  if (card.issue) node.appendChild(text("span", ` #${card.issue.rank}→${card.issue.suggested ?? "?"}`, "bad"));
  if (card.prediction && card.prediction.label !== now.label) {
    node.appendChild(text("span", ` ≠${card.prediction.label}`, "bad"));
  }
  return node;
}

function cardNode(card, index) {
  const now = effective(card);
  const node = document.createElement("div");
  node.className = "card";
  node.dataset.id = card.id;
  node.dataset.index = String(index);
  node.setAttribute("role", "gridcell");
  node.classList.toggle("removed", now.remove);
  node.classList.toggle("edited", Boolean(card.edit));
  node.classList.toggle("selected", index === state.selected);
  const frame = document.createElement("figure");
  frame.className = "frame";
  const img = document.createElement("img");
  img.alt = card.id;
  img.decoding = "async";
  img.loading = "lazy";
  if (Math.max(card.width, card.height) <= 64) img.classList.add("pixelated");
  img.src = api.thumbUrl(card.id);
  frame.appendChild(img);
  frame.appendChild(overlay(card, now.objects, state.info.classes));
  node.appendChild(frame);
  node.appendChild(caption(card));
  node.addEventListener("click", () => select(index));
  node.addEventListener("dblclick", () => openPanel(card.id));
  return node;
}

function renderGrid() {
  $("grid").replaceChildren(...state.cards.map(cardNode));
}

function replaceCard(card) {
  const index = state.cards.findIndex((c) => c.id === card.id);
  if (index < 0) return;
  state.cards[index] = card;
  const old = $("grid").children[index];
  if (old) old.replaceWith(cardNode(card, index));
}

function select(index) {
  if (!state.cards.length) return;
  state.selected = Math.max(0, Math.min(index, state.cards.length - 1));
  for (const node of $("grid").children) node.classList.toggle("selected", Number(node.dataset.index) === state.selected);
  const node = $("grid").children[state.selected];
  if (node) node.scrollIntoView({ block: "nearest" });
  if (state.panel && state.panel.id !== state.cards[state.selected].id) openPanel(state.cards[state.selected].id);
}

function columns() {
  const nodes = $("grid").children;
  if (!nodes.length) return 1;
  const top = nodes[0].offsetTop;
  let n = 0;
  while (n < nodes.length && nodes[n].offsetTop === top) n += 1;
  return Math.max(n, 1);
}

async function turnPage(delta) {
  const offset = state.offset + delta * PAGE;
  if (offset < 0 || offset >= state.total) return;
  state.offset = offset;
  state.selected = delta > 0 ? 0 : PAGE - 1;
  await loadPage();
}

// --- edits --------------------------------------------------------------------------------
function cardOf(id) {
  if (state.panel && state.panel.id === id) return state.panel;
  return state.cards.find((c) => c.id === id) || null;
}

// Apply edits on the page at once (what the server will answer), then send them. The undo entry is
// kept at once too, so an undo pressed before the answer undoes this edit. The server's answer
// replaces a card only when no newer edit of it was made meanwhile (the newer one's answer will
// come); a refused edit puts the card back as the server has it.
const versions = new Map();  // sample id -> local edits made so far
let queue = Promise.resolve();

function touch(id) {
  versions.set(id, (versions.get(id) || 0) + 1);
  return versions.get(id);
}

async function send(edits, undoable = true) {
  const before = [], sent = new Map();
  for (const edit of edits) {
    const card = cardOf(edit.id);
    if (!card) continue;
    const now = effective(card), previous = { id: edit.id };
    if ("label" in edit) previous.label = now.label;
    if ("objects" in edit) previous.objects = now.objects || [];
    if ("remove" in edit) previous.remove = now.remove;
    before.push(previous);
    const { id, ...fields } = edit;
    card.edit = { ...(card.edit || {}), ...fields };
    sent.set(id, touch(id));
    show(card);
  }
  if (undoable) state.undo.push(before);
  const turn = queue.then(() => api.edits(edits));  // one request at a time: the file keeps the order of the keys
  queue = turn.catch(() => null);
  try {
    const result = await turn;
    for (const card of result.samples) if (versions.get(card.id) === sent.get(card.id)) show(card);
    $("pending").textContent = String(result.pending);
    status(`${edits.length} edit${edits.length === 1 ? "" : "s"} kept in ${state.info.edits_file}`);
  } catch (err) {
    status(err.message, true);
    if (undoable && state.undo[state.undo.length - 1] === before) state.undo.pop();
    for (const edit of edits) {
      const fresh = await api.sample(edit.id).catch(() => null);
      if (fresh && versions.get(edit.id) === sent.get(edit.id)) show(fresh);
    }
  }
}

function show(card) {
  const index = state.cards.findIndex((c) => c.id === card.id);
  if (index >= 0) {
    const { findings, parents, ...listed } = card;
    const merged = { ...state.cards[index], ...listed };
    if (!("edit" in card)) delete merged.edit;
    replaceCard(merged);
  }
  if (state.panel && state.panel.id === card.id) {
    if (card !== state.panel) Object.assign(state.panel, card);
    if (!("edit" in card)) delete state.panel.edit;
    renderPanel();
  }
}

async function undo() {
  const last = state.undo.pop();
  if (!last) { status("nothing to undo"); return; }
  await send(last, false);
}

function currentCard() {
  if (state.panel) return state.panel;
  return state.cards[state.selected];
}

async function setClass(name) {
  const card = currentCard();
  if (!card) return;
  if (state.panel && state.box >= 0) {
    const objects = structuredClone(effective(card).objects || []);
    objects[state.box].label = name;
    await send([{ id: card.id, objects }]);
    return;
  }
  if (state.panel && state.info.task !== "classification") {
    state.drawClass = name;
    renderPanelClass();
    return;
  }
  const sent = send([{ id: card.id, label: name }]);
  if (!state.panel) select(state.selected + 1);  // at once: the next key is for the next sample
  await sent;
}

async function toggleRemove() {
  const card = currentCard();
  if (card) await send([{ id: card.id, remove: !effective(card).remove }]);
}

async function deleteBox() {
  const card = state.panel;
  if (!card || state.box < 0) return;
  const objects = structuredClone(effective(card).objects || []);
  objects.splice(state.box, 1);
  state.box = -1;
  await send([{ id: card.id, objects }]);
}

async function addBox(bbox) {
  const card = state.panel;
  const objects = structuredClone(effective(card).objects || []);
  objects.push({ label: state.drawClass || state.info.classes[0], bbox });
  state.box = objects.length - 1;
  await send([{ id: card.id, objects }]);
}

// Boxes by keyboard: `b` adds one in the middle of the image, arrows move the selected box and
// Shift+arrows move its right and bottom edges, in steps of 2% of the image; a run of steps is
// sent once it pauses, and undone as one.
let nudgeTimer = null, nudgeBefore = null;

async function keyboardBox() {
  const card = state.panel;
  const w = card.width, h = card.height;
  const r = (v) => Math.round(v * 10) / 10;
  await addBox([r(w * 0.25), r(h * 0.25), r(w * 0.75), r(h * 0.75)]);
}

function nudge(dx, dy, resize) {
  const card = state.panel;
  const now = effective(card);
  const objects = structuredClone(now.objects || []);
  const obj = objects[state.box];
  if (!obj || !obj.bbox) return;
  if (nudgeBefore === null) nudgeBefore = [{ id: card.id, objects: now.objects || [] }];
  const sx = card.width * 0.02 * dx, sy = card.height * 0.02 * dy;
  const clamp = (v, lo, hi) => Math.round(Math.max(lo, Math.min(v, hi)) * 10) / 10;
  let [x1, y1, x2, y2] = obj.bbox;
  if (resize) {
    x2 = clamp(x2 + sx, x1 + 1, card.width);
    y2 = clamp(y2 + sy, y1 + 1, card.height);
  } else {
    const mx = clamp(sx, -x1, card.width - x2), my = clamp(sy, -y1, card.height - y2);
    [x1, y1, x2, y2] = [x1 + mx, y1 + my, x2 + mx, y2 + my].map((v) => Math.round(v * 10) / 10);
  }
  obj.bbox = [x1, y1, x2, y2];
  card.edit = { ...(card.edit || {}), objects };  // shown at once, sent when the steps pause
  touch(card.id);
  renderPanel();
  clearTimeout(nudgeTimer);
  nudgeTimer = setTimeout(async () => {
    const before = nudgeBefore;
    nudgeBefore = null;
    state.undo.push(before);
    await send([{ id: card.id, objects }], false);
  }, 300);
}

// --- the sample panel ---------------------------------------------------------------------
async function openPanel(id) {
  try {
    state.panel = await api.sample(id);
    state.box = -1;
    $("panel").hidden = false;
    renderPanel();
    await renderParents();
  } catch (err) {
    status(err.message, true);
  }
}

function closePanel() {
  state.panel = null;
  state.box = -1;
  $("panel").hidden = true;
  $("grid").focus();
}

function renderPanelClass() {
  const now = effective(state.panel);
  const parts = [`class: ${now.label ?? "—"}`];
  if (state.info.task !== "classification") {
    parts.push(`${(now.objects || []).length} objects`, `new boxes: ${state.drawClass || state.info.classes[0]}`);
    if (state.box >= 0) parts.push(`selected box ${state.box + 1}: ${now.objects[state.box].label}`);
  }
  if (now.remove) parts.push("marked for removal");
  $("panel-class").textContent = parts.join(" · ");
}

function svgPoint(svg, event) {
  const point = svg.createSVGPoint();
  point.x = event.clientX;
  point.y = event.clientY;
  return point.matrixTransform(svg.getScreenCTM().inverse());
}

function renderPanel() {
  const card = state.panel;
  const now = effective(card);
  $("panel-title").textContent = card.id;
  renderPanelClass();
  const stage = $("stage");
  const img = document.createElement("img");
  img.alt = card.id;
  if (Math.max(card.width, card.height) <= 64) img.classList.add("pixelated");
  img.src = api.imageUrl(card.id);
  const svg = overlay(card, now.objects, state.info.classes, { selected: state.box, shown: 420 });
  svg.id = "editor";
  stage.replaceChildren(img, svg);
  attachEditor(svg, card);
  const notes = $("panel-notes");
  notes.replaceChildren();
  for (const f of card.findings || []) notes.appendChild(text("p", `${f.level} ${f.code}: ${f.message}`, `note ${f.level}`));
  if (card.issue) notes.appendChild(text("p", `label issue #${card.issue.rank}: given ${card.issue.given}, suggested ${card.issue.suggested} (score ${card.issue.score})`, "note warning"));
  if (card.prediction) notes.appendChild(text("p", `model: ${card.prediction.label} (${card.prediction.score})`, "note"));
  if (card.edit) notes.appendChild(text("p", `pending edit: ${JSON.stringify(card.edit)}`, "note"));
  const record = { ...card };
  for (const key of ["edit", "issue", "prediction", "findings", "parents", "row"]) delete record[key];
  $("record").textContent = JSON.stringify(record, null, 2);
  const lineage = $("lineage");
  lineage.replaceChildren(...(state.info.lineage || []).map((entry) =>
    text("li", `${entry.stage} ${JSON.stringify(entry.params || {})} ${entry.time || ""}`)));
  for (const change of (card.meta && card.meta.relabel) || []) {
    lineage.appendChild(text("li", `relabel ${change.field}: ${JSON.stringify(change.old)} → ${JSON.stringify(change.new)} (${change.source || ""})`));
  }
}

async function renderParents() {
  const holder = $("parents");
  holder.replaceChildren();
  for (const id of state.panel.parents || []) {
    try {
      const parent = await api.sample(id);
      const frame = document.createElement("figure");
      frame.className = "frame";
      const img = document.createElement("img");
      img.alt = id;
      if (Math.max(parent.width, parent.height) <= 64) img.classList.add("pixelated");
      img.src = api.thumbUrl(id);
      frame.append(img, overlay(parent, effective(parent).objects, state.info.classes));
      holder.append(frame, text("div", `parent ${id}`, "small"));
    } catch (err) {
      status(err.message, true);
    }
  }
}

function attachEditor(svg, card) {
  // A press and release without moving selects the object under the pointer (or nothing);
  // a drag draws a new box with the current class.
  let start = null, draft = null, hit = -1;
  svg.addEventListener("pointerdown", (event) => {
    const target = event.target.closest ? event.target.closest("g.obj") : null;
    hit = target ? Number(target.dataset.index) : -1;
    start = svgPoint(svg, event);
    if (state.info.task !== "classification") {
      draft = el("rect", { class: "draft", x: start.x, y: start.y, width: 0, height: 0 }, svg);
    }
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start || !draft) return;
    const p = svgPoint(svg, event);
    draft.setAttribute("x", Math.min(start.x, p.x));
    draft.setAttribute("y", Math.min(start.y, p.y));
    draft.setAttribute("width", Math.abs(p.x - start.x));
    draft.setAttribute("height", Math.abs(p.y - start.y));
  });
  svg.addEventListener("pointerup", (event) => {
    if (!start) return;
    const p = svgPoint(svg, event);
    const clamp = (v, hi) => Math.round(Math.max(0, Math.min(v, hi)) * 10) / 10;
    const box = [clamp(Math.min(start.x, p.x), card.width), clamp(Math.min(start.y, p.y), card.height),
      clamp(Math.max(start.x, p.x), card.width), clamp(Math.max(start.y, p.y), card.height)];
    const rect = svg.getBoundingClientRect();
    const moved = Math.hypot(p.x - start.x, p.y - start.y) * rect.width / card.width;
    start = null;
    if (draft) { draft.remove(); draft = null; }
    if (moved >= 4 && state.info.task !== "classification" && box[2] - box[0] >= 1 && box[3] - box[1] >= 1) {
      addBox(box);
    } else {
      state.box = hit;
      renderPanel();
    }
  });
}

// --- keyboard -----------------------------------------------------------------------------
function onKey(event) {
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement) {
    if (event.key === "Escape") target.blur();
    return;
  }
  if (target instanceof HTMLButtonElement && (event.key === "Enter" || event.key === " ")) return;  // the button's own
  if (event.ctrlKey && event.key === "z") { event.preventDefault(); undo(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const arrows = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowDown: [0, 1], ArrowUp: [0, -1] };
  if (state.panel && state.box >= 0 && event.key in arrows) {
    event.preventDefault();
    nudge(...arrows[event.key], event.shiftKey);
    return;
  }
  if (state.panel && event.key === "b" && state.info.task !== "classification") { keyboardBox(); return; }
  const cols = columns();
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols };
  if (event.key in moves) {
    event.preventDefault();
    const next = state.selected + moves[event.key];
    if (next >= state.cards.length && state.offset + PAGE < state.total) turnPage(1);
    else if (next < 0 && state.offset > 0) turnPage(-1);
    else select(next);
    return;
  }
  const key = event.key;
  if (key === "Enter") { const card = state.cards[state.selected]; if (card) openPanel(card.id); event.preventDefault(); return; }
  if (key === "Escape") { if (state.panel && state.box >= 0) { state.box = -1; renderPanel(); } else closePanel(); return; }
  if (key === "Delete" || key === "Backspace") { event.preventDefault(); deleteBox(); return; }
  if (key === "x") { toggleRemove(); return; }
  if (key === "u") { undo(); return; }
  if (key === "n") { turnPage(1); return; }
  if (key === "p") { turnPage(-1); return; }
  if (state.keys.has(key)) { event.preventDefault(); setClass(state.keys.get(key)); }
}

// --- start --------------------------------------------------------------------------------
function fillSelect(id, values) {
  const select = $(id);
  for (const value of values) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.appendChild(option);
  }
}

async function start() {
  try {
    state.info = await api.info();
  } catch (err) {
    status(err.message, true);
    return;
  }
  const info = state.info;
  document.title = `${info.name} · pipeline view`;
  $("title").textContent = `${info.name} (${info.task}, ${info.samples.toLocaleString()} samples)`;
  fillSelect("f-label", info.classes);
  fillSelect("f-finding", Object.keys(info.checks));
  $("l-issues").hidden = !info.issues;
  $("l-rank").hidden = !info.issues;
  $("l-disagree").hidden = !info.predictions;
  $("edits-file").textContent = info.edits_file;
  $("pending").textContent = String(info.pending);
  $("save-name").value = `${info.name}-v2`;
  assignKeys(info.classes);
  $("hotkeys").replaceChildren(...[...state.keys].map(([key, name]) => row([[key], [name]])));
  $("dataset-findings").replaceChildren(...info.dataset_findings.map((f) => text("li", `${f.code}: ${f.message}`)));
  state.drawClass = info.classes[0] || null;

  $("filters").addEventListener("change", applyFilters);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); applyFilters(); });
  let timer = null;
  $("f-q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 250); });
  $("prev").addEventListener("click", () => turnPage(-1));
  $("next").addEventListener("click", () => turnPage(1));
  $("jump").addEventListener("change", async () => {
    const value = Number($("jump").value);
    if (!Number.isInteger(value) || value < 0) return;
    state.offset = Math.min(value, Math.max(state.total - 1, 0));
    state.selected = 0;
    await loadPage();
  });
  $("close").addEventListener("click", closePanel);
  $("undo").addEventListener("click", undo);
  $("save-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("save-name").value.trim();
    status(`saving ${name} ...`);
    try {
      const result = await api.save(name);
      const item = text("li", `${result.out}: ${result.changed} changed, ${result.removed} removed`);
      item.dataset.out = result.out;
      $("saved").appendChild(item);
      status(`saved a new version: ${result.out}`);
    } catch (err) {
      status(err.message, true);
    }
  });
  document.addEventListener("keydown", onKey);
  await applyFilters();
  $("grid").focus();
  document.body.dataset.ready = "1";
}

start();
