// Entities: the text with each entity a <mark> over its characters (``start``/``end`` of
// the token-classification answer, grouped with aggregation_strategy "simple"), its group
// (drawn by the stylesheet from data-group) and score as the label and title. Text nodes and marks are built from slices of the
// input, never parsed as markup.

import { post } from "./api.js";
import { $, el, modelOf, onSubmit } from "./dom.js";

// The input cut into plain text and marks; overlapping or out-of-range spans are skipped.
function highlighted(text, entities) {
  const out = [];
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at || e.end > text.length || e.end <= e.start) continue;
    if (e.start > at) out.push(text.slice(at, e.start));
    const group = e.entity_group ?? e.entity;
    out.push(el("mark", {
      class: "entity", title: `${group} ${e.score.toFixed(3)}`,
      dataset: { group, start: e.start, end: e.end },
    }, text.slice(e.start, e.end)));
    at = e.end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

export function setupNer() {
  onSubmit($("#ner-form"), async () => {
    const text = $("#ner-input").value;
    const model = modelOf("ner");
    const entities = await post(`/v1/infer/${encodeURIComponent(model)}`, {
      inputs: text, parameters: { aggregation_strategy: "simple" },
    });
    const out = $("#ner-output");
    out.replaceChildren(...highlighted(text, entities));
    out.dataset.entities = String(entities.length);
  });
}
