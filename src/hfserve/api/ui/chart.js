// A line chart on a plain <canvas>: a few named series over the last ``points`` samples,
// the y axis from zero to the largest value shown. Small enough not to need a library.

const COLORS = ["#2f6fdf", "#e0742b", "#3a9d5d", "#b543b5"];

export class LineChart {
  constructor(canvas, names, points = 60) {
    this.canvas = canvas;
    this.names = names;
    this.points = points;
    this.series = names.map(() => []);
  }

  push(values) {
    values.forEach((v, i) => {
      const s = this.series[i];
      s.push(v === null || v === undefined || Number.isNaN(v) ? null : v);
      if (s.length > this.points) s.shift();
    });
    // What is drawn, readable outside the canvas (tests, accessibility tools).
    this.canvas.dataset.latest = JSON.stringify(values);
    this.canvas.setAttribute("aria-label", this.names.map((n, i) => `${n} ${values[i] ?? "–"}`)
      .join(", "));
    this.draw();
  }

  draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth || 300;
    const height = this.canvas.clientHeight || 140;
    this.canvas.width = width * ratio;
    this.canvas.height = height * ratio;
    const g = this.canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const pad = { left: 44, right: 8, top: 8, bottom: 18 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const all = this.series.flat().filter((v) => v !== null);
    const top = niceMax(all.length ? Math.max(...all) : 0);

    g.strokeStyle = "#ddd";
    g.fillStyle = "#666";
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let i = 0; i <= 2; i++) {
      const y = pad.top + plotH - (plotH * i) / 2;
      g.beginPath();
      g.moveTo(pad.left, y);
      g.lineTo(width - pad.right, y);
      g.stroke();
      g.fillText(format((top * i) / 2), 4, y + 4);
    }
    this.series.forEach((s, i) => {
      g.strokeStyle = COLORS[i % COLORS.length];
      g.lineWidth = 2;
      g.beginPath();
      let drawing = false;
      s.forEach((v, j) => {
        if (v === null) {
          drawing = false;
          return;
        }
        const x = pad.left + (plotW * (j + this.points - s.length)) / (this.points - 1);
        const y = pad.top + plotH - (top ? (plotH * v) / top : 0);
        if (drawing) g.lineTo(x, y);
        else g.moveTo(x, y);
        drawing = true;
      });
      g.stroke();
    });
    let x = pad.left;
    this.names.forEach((name, i) => {
      if (this.names.length < 2) return;
      g.fillStyle = COLORS[i % COLORS.length];
      g.fillText(name, x, height - 4);
      x += g.measureText(name).width + 12;
    });
  }
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

function format(v) {
  if (v === 0) return "0";
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}
