// Labels drawn over an image as SVG in the image's own pixel coordinates (viewBox = width x height),
// so nothing is re-encoded when a label changes: boxes, polygons, polylines, keypoints and class names.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#ff6b6b", "#4fa3ff", "#ffc04d", "#5ad17a", "#c38bff", "#ff8fd1", "#4ee0d6", "#ff9f43",
  "#a3e635", "#f472b6", "#60a5fa", "#facc15"];

export function colour(classes, name) {
  const i = classes.indexOf(name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

export function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

export function objectBox(obj) {
  if (obj.bbox) return obj.bbox;
  const pts = [...(obj.polygon || []).flat(), ...(obj.keypoints || []), ...(obj.polyline || [])];
  if (!pts.length) return null;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

// An <svg> for one sample: `objects` as given (already with any pending edit), `selected` an object
// index, `shown` about how many screen pixels the image's longer side takes (sizes the text and points).
export function overlay(sample, objects, classes, { selected = -1, labels = true, shown = 150 } = {}) {
  const svg = el("svg", { viewBox: `0 0 ${sample.width} ${sample.height}`, preserveAspectRatio: "xMidYMid meet" });
  const scale = Math.max(sample.width, sample.height) / shown;  // image pixels per screen pixel
  (objects || []).forEach((obj, i) => {
    const g = el("g", { class: `obj${i === selected ? " sel" : ""}`, "data-index": String(i) }, svg);
    const c = colour(classes, obj.label);
    for (const ring of obj.polygon || []) {
      el("polygon", { class: "poly", points: ring.map((p) => p.join(",")).join(" "), fill: c, stroke: c }, g);
    }
    if (obj.polyline) el("polyline", { class: "line", points: obj.polyline.map((p) => p.join(",")).join(" "), stroke: c }, g);
    if (obj.bbox) {
      const [x1, y1, x2, y2] = obj.bbox;
      el("rect", { class: "box", x: x1, y: y1, width: Math.max(x2 - x1, 0.5), height: Math.max(y2 - y1, 0.5), stroke: c }, g);
    }
    for (const kp of obj.keypoints || []) {
      if (kp.length > 2 && kp[2] === 0) continue;
      el("circle", { cx: kp[0], cy: kp[1], r: 2 * scale, fill: c }, g);
    }
    const box = objectBox(obj);
    if (labels && box) {
      const t = el("text", { x: box[0] + scale, y: Math.max(box[1] - 2 * scale, 10 * scale), "font-size": 10 * scale }, g);
      t.textContent = obj.label;
    }
  });
  return svg;
}
