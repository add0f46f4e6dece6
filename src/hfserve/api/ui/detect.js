// Object detection: the uploaded image drawn on a canvas with each box /v1/detect finds,
// labelled with its class and score. The boxes are in the image's pixels; a small image is
// drawn a whole number of times larger (``data-scale``) so that the captions stay legible.
// ``data-boxes`` says how many boxes were drawn.

const DRAWN = 480;            // canvas pixels a small image is scaled up towards

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
  const scale = Math.max(1, Math.floor(DRAWN / Math.max(image.naturalWidth,
    image.naturalHeight)));
  canvas.width = image.naturalWidth * scale;
  canvas.height = image.naturalHeight * scale;
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(image, 0, 0, canvas.width, canvas.height);
  const line = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 200));
  const size = Math.max(12, Math.round(Math.min(canvas.width, canvas.height) / 30));
  g.font = `${size}px system-ui, sans-serif`;
  g.textBaseline = "top";
  const labels = [...new Set(objects.map((o) => o.label))];
  for (const { label, score, box } of objects) {
    const colour = COLOURS[labels.indexOf(label) % COLOURS.length];
    const [x, y] = [box.xmin * scale, box.ymin * scale];
    g.strokeStyle = colour;
    g.lineWidth = line;
    g.strokeRect(x, y, (box.xmax - box.xmin) * scale, (box.ymax - box.ymin) * scale);
    const caption = `${label} ${score.toFixed(2)}`;
    const top = Math.max(0, y - size - 2);
    g.fillStyle = colour;
    g.fillRect(x, top, g.measureText(caption).width + 4, size + 2);
    g.fillStyle = "#fff";
    g.fillText(caption, x + 2, top + 1);
  }
  canvas.dataset.scale = String(scale);
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
