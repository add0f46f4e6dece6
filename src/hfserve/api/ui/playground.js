// The playground: one panel per task family, shown only for the tasks some served model
// does (the ``tasks`` of /v1/models), each calling the server's own OpenAI-style routes.

import { post, stream } from "./api.js";
import { setupDetect } from "./detect.js";
import { $, $$, el, modelOf, onSubmit, readAsDataURL, rows } from "./dom.js";
import { setupNer } from "./ner.js";
import { setupTranscribe } from "./transcribe.js";

// panel -> the model tasks that enable it
const PANELS = [
  { id: "chat", label: "Chat", tasks: ["text-generation", "image-text-to-text"] },
  { id: "completions", label: "Completions", tasks: ["text-generation"] },
  { id: "embeddings", label: "Embeddings", tasks: ["embedding"] },
  { id: "rerank", label: "Rerank", tasks: ["rerank"] },
  { id: "classify", label: "Classify", tasks: ["text-classification"] },
  { id: "image", label: "Image classification", tasks: ["image-classification"] },
  { id: "ner", label: "Entities", tasks: ["token-classification"] },
  { id: "detect", label: "Object detection", tasks: ["object-detection"] },
  { id: "transcribe", label: "Transcription", tasks: ["automatic-speech-recognition"] },
];

const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const number = (id) => Number($(id).value);
let cards = [];

function show(panel) {
  for (const p of PANELS) $(`#pg-${p.id}`).hidden = p.id !== panel;
  for (const b of $$("#tasks button")) b.classList.toggle("active", b.dataset.panel === panel);
}

let shown = "";

export function setModels(models) {
  cards = models;
  const enabled = PANELS.map((p) => ({
    ...p, models: models.filter((m) => (m.tasks || []).some((t) => p.tasks.includes(t))),
  })).filter((p) => p.models.length);
  const signature = JSON.stringify(enabled.map((p) => [p.id, p.models.map((m) => m.id)]));
  if (signature === shown) return;         // the same tabs and models: leave the page be
  shown = signature;
  $("#tasks").replaceChildren(...enabled.map((p) => el("button", {
    type: "button", dataset: { panel: p.id }, onclick: () => show(p.id),
  }, p.label)));
  for (const p of enabled) {
    const select = $(`#pg-${p.id} select.model`);
    const chosen = select.value;
    select.replaceChildren(...p.models.map((m) => el("option", { value: m.id }, m.id)));
    if (p.models.some((m) => m.id === chosen)) select.value = chosen;
  }
  $("#no-tasks").hidden = enabled.length > 0;
  const open = PANELS.find((p) => !$(`#pg-${p.id}`).hidden);
  if (enabled.length && !enabled.some((p) => p.id === open?.id)) show(enabled[0].id);
  else if (open) show(open.id);
}

// Stream ``body`` to ``path``; ``text(event)`` is the new text of one event. Shows TTFT and
// tokens/s (completion tokens from the final usage, over the time after the first token).
// The Stop button aborts the stream in flight.
let inFlight = null;

async function generate(path, body, text, onText, stats) {
  const started = performance.now();
  let first = null;
  let tokens = null;
  let events = 0;
  inFlight = new AbortController();
  try {
    await stream(path, { ...body, stream: true, stream_options: { include_usage: true } }, (e) => {
      if (e.usage) tokens = e.usage.completion_tokens;
      const delta = text(e);
      if (delta) {
        if (first === null) first = performance.now();
        events++;
        onText(delta);
      }
    }, inFlight.signal);
  } catch (error) {
    if (error.name !== "AbortError") throw error;
  } finally {
    inFlight = null;
  }
  const ended = performance.now();
  const count = tokens ?? events;
  const decode = first === null ? 0 : (ended - first) / 1000;
  stats.textContent = first === null ? "no tokens" : `TTFT ${((first - started)).toFixed(0)} ms · `
    + `${count} tokens · ${decode > 0 ? (count / decode).toFixed(1) : "–"} tokens/s`;
}

let history = [];

function chatBubble(role, text) {
  const node = el("div", { class: `msg ${role}` }, el("b", {}, role), el("span", {}, text));
  $("#chat-log").append(node);
  return $("span", node);
}

function setupChat() {
  $("#chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {     // Enter sends, Shift+Enter breaks
      event.preventDefault();
      $("#chat-form").requestSubmit();
    }
  });
  for (const button of $$("button.stop")) {
    button.addEventListener("click", () => inFlight?.abort());
  }
  $("#chat-clear").addEventListener("click", () => {
    history = [];
    $("#chat-log").replaceChildren();
    $("#chat-stats").textContent = "";
  });
  onSubmit($("#chat-form"), async () => {
    const content = $("#chat-input").value.trim();
    if (!content) return;
    $("#chat-input").value = "";
    history.push({ role: "user", content });
    chatBubble("user", content);
    const reply = chatBubble("assistant", "");
    reply.parentElement.classList.add("streaming");
    const system = $("#chat-system").value.trim();
    const messages = system ? [{ role: "system", content: system }, ...history] : history;
    try {
      await generate("/v1/chat/completions", {
        model: modelOf("chat"), messages, temperature: number("#chat-temperature"),
        top_p: number("#chat-top-p"), max_tokens: number("#chat-max-tokens"),
      }, (e) => e.choices?.[0]?.delta?.content, (t) => { reply.textContent += t; },
      $("#chat-stats"));
      history.push({ role: "assistant", content: reply.textContent });
    } catch (error) {
      history.pop();
      reply.parentElement.remove();
      throw error;
    } finally {
      reply.parentElement.classList.remove("streaming");
    }
  });
}

function setupCompletions() {
  onSubmit($("#completion-form"), async () => {
    const out = $("#completion-output");
    out.textContent = "";
    await generate("/v1/completions", {
      model: modelOf("completions"), prompt: $("#completion-prompt").value,
      temperature: number("#completion-temperature"),
      max_tokens: number("#completion-max-tokens"),
    }, (e) => e.choices?.[0]?.text, (t) => { out.textContent += t; }, $("#completion-stats"));
  });
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}

function setupEmbeddings() {
  onSubmit($("#embeddings-form"), async () => {
    const texts = lines($("#embeddings-input").value);
    const result = await post("/v1/embeddings", { model: modelOf("embeddings"), input: texts });
    const vectors = result.data.sort((a, b) => a.index - b.index).map((d) => d.embedding);
    const table = $("#embeddings-matrix");
    rows(table, ["", ...texts.map((_, i) => `#${i + 1}`)], vectors.map((v, i) => [
      `#${i + 1} ${texts[i]}`, ...vectors.map((w) => cosine(v, w).toFixed(2)),
    ]));
    for (const cell of $$("tbody td:not(:first-child)", table)) {
      cell.style.setProperty("--sim", cell.textContent);
    }
  });
}

function setupRerank() {
  onSubmit($("#rerank-form"), async () => {
    const documents = lines($("#rerank-documents").value);
    const result = await post("/v1/rerank", {
      model: modelOf("rerank"), query: $("#rerank-query").value, documents,
    });
    rows($("#rerank-results"), ["Rank", "Score", "Document"], result.results.map((r, i) => [
      i + 1, r.relevance_score.toFixed(4), documents[r.index],
    ]));
  });
}

// The ``k`` likeliest labels of one classify result: named from the model card's labels
// when it lists them (the response names only the best one).
function ranked(item, model, k = 5) {
  const names = cards.find((m) => m.id === model)?.labels;
  const best = item.probs.indexOf(Math.max(...item.probs));
  return item.probs.map((p, i) => [names?.[i] ?? (i === best ? item.label : `class ${i}`), p])
    .sort((a, b) => b[1] - a[1]).slice(0, k);
}

function setupClassify() {
  onSubmit($("#classify-form"), async () => {
    const model = modelOf("classify");
    const texts = lines($("#classify-input").value);
    const result = await post("/v1/classify", { model, input: texts });
    rows($("#classify-results"), ["Text", "Label", "Probability"], result.data.map((d) => {
      const [label, p] = ranked(d, model, 1)[0];
      return [texts[d.index], label, p.toFixed(4)];
    }));
  });
}

function setupImage() {
  const preview = $("#image-preview");
  $("#image-file").addEventListener("change", () => {
    const file = $("#image-file").files[0];
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
  });
  onSubmit($("#image-form"), async () => {
    const model = modelOf("image");
    const image = await readAsDataURL($("#image-file").files[0]);
    const result = await post("/v1/classify", { model, input: [image] });
    rows($("#image-results"), ["Label", "Probability"],
      ranked(result.data[0], model).map(([label, p]) => [label, p.toFixed(4)]));
  });
}

export function setupPlayground() {
  setupChat();
  setupCompletions();
  setupEmbeddings();
  setupRerank();
  setupClassify();
  setupImage();
  setupNer();
  setupDetect();
  setupTranscribe();
}
