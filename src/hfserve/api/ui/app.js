// Entry point: find out whether the server wants a key (a 401 from /v1/models), ask for
// one when it does, then start the dashboard and the playground.

import { ApiError, key } from "./api.js";
import { refreshModels, refreshReady, startDashboard } from "./dashboard.js";
import { $, $$, showError } from "./dom.js";
import { setModels, setupPlayground } from "./playground.js";

let timer = null;

function view(name) {
  for (const v of $$("main.view")) v.hidden = v.id !== name;
  for (const b of $$("header nav button")) b.classList.toggle("active", b.dataset.view === name);
}

function askForKey(message) {
  $("#login").hidden = false;
  $("header nav").hidden = true;
  for (const v of $$("main.view")) v.hidden = true;
  if (message) showError(new Error(message));
  $("#key").focus();
}

async function boot() {
  let models;
  try {
    models = await refreshModels();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      const sent = key.get();
      if (sent) key.clear();
      askForKey(sent ? `The API key was refused: ${error.message}`
        : "This server needs an API key.");
      return;
    }
    showError(error);
    return;
  }
  showError(null);
  $("#login").hidden = true;
  $("header nav").hidden = false;
  $("#forget-key").hidden = !key.get();
  view($("header nav button.active")?.dataset.view || "dashboard");
  setModels(models);
  if (timer === null) timer = startDashboard(setModels);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of $$("header nav button")) {
    b.addEventListener("click", () => view(b.dataset.view));
  }
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    key.set($("#key").value.trim());
    $("#key").value = "";
    boot();
  });
  $("#forget-key").addEventListener("click", () => {
    key.clear();
    location.reload();
  });
  setupPlayground();
  refreshReady();
  boot();
});
