// Object detection: the uploaded image drawn on a canvas with each box /v1/detect finds,
// labelled with its class and score. The canvas keeps the image's own pixel size (the
// boxes are in those pixels) and the stylesheet scales it to fit; ``data-boxes`` says how
// many boxes were drawn.

import { post } from "./api.js";
import { $, modelOf, onSubmit, readAsDataURL } from "./dom.js";

const COLOURS = ["#2f6fdf", "#c0392b", "#1e8a4c", "#8e44ad", "#d35400", "#16a085"];

function loaded(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser could not read this image"));
    image.src = url;
  });
}

function draw(canvas, image, objects) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const g = canvas.getContext("2d");
  g.drawImage(image, 0, 0);
  const line = Math.max(1, Math.round(Math.min(canvas.width, canvas.height) / 150));
  const size = Math.max(8, Math.round(Math.min(canvas.width, canvas.height) / 25));
  g.font = `${size}px system-ui, sans-serif`;
  g.textBaseline = "top";
  const labels = [...new Set(objects.map((o) => o.label))];
  for (const { label, score, box } of objects) {
    const colour = COLOURS[labels.indexOf(label) % COLOURS.length];
    g.strokeStyle = colour;
    g.lineWidth = line;
    g.strokeRect(box.xmin, box.ymin, box.xmax - box.xmin, box.ymax - box.ymin);
    const caption = `${label} ${score.toFixed(2)}`;
    const width = g.measureText(caption).width + 4;
    const y = Math.max(0, box.ymin - size - 2);
    g.fillStyle = colour;
    g.fillRect(box.xmin, y, width, size + 2);
    g.fillStyle = "#fff";
    g.fillText(caption, box.xmin + 2, y + 1);
  }
  canvas.dataset.boxes = String(objects.length);
}

export function setupDetect() {
  const threshold = $("#detect-threshold");
  const shown = $("#detect-threshold-value");
  threshold.addEventListener("input", () => { shown.textContent = threshold.value; });
  onSubmit($("#detect-form"), async () => {
    const url = await readAsDataURL($("#detect-file").files[0]);
    const result = await post("/v1/detect", {
      model: modelOf("detect"), input: [url], threshold: Number(threshold.value),
    });
    const objects = result.data[0].objects;
    const canvas = $("#detect-canvas");
    draw(canvas, await loaded(url), objects);
    canvas.hidden = false;
    $("#detect-stats").textContent = `${objects.length} object${objects.length === 1 ? "" : "s"}`
      + ` above ${threshold.value}`;
  });
}
