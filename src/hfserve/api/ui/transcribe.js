// Transcription: an uploaded (or recorded) audio file sent as multipart to
// /v1/audio/transcriptions with response_format=verbose_json; the text is shown with a
// table of its segments and their times.

import { postForm } from "./api.js";
import { $, modelOf, onSubmit, rows } from "./dom.js";

let recorded = null;          // the last recording, used when no file is chosen

const seconds = (t) => (typeof t === "number" ? t.toFixed(2) : "–");

function setupRecorder() {
  const button = $("#transcribe-record");
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    button.hidden = true;
    return;
  }
  let recorder = null;
  button.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    const media = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(media);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = () => {
      for (const track of media.getTracks()) track.stop();
      recorded = new Blob(chunks, { type: recorder.mimeType });
      recorder = null;
      button.textContent = "Record";
      $("#transcribe-file").value = "";
      $("#transcribe-source").textContent = `recording (${(recorded.size / 1024).toFixed(0)} KiB)`;
    };
    recorder.start();
    button.textContent = "Stop recording";
  });
}

export function setupTranscribe() {
  setupRecorder();
  $("#transcribe-file").addEventListener("change", () => {
    recorded = null;
    $("#transcribe-source").textContent = "";
  });
  onSubmit($("#transcribe-form"), async () => {
    const file = $("#transcribe-file").files[0];
    const audio = file ?? recorded;
    if (!audio) throw new Error("choose an audio file or record one");
    const form = new FormData();
    form.append("model", modelOf("transcribe"));
    form.append("file", audio, file ? file.name : "recording.webm");
    form.append("response_format", "verbose_json");
    const result = await postForm("/v1/audio/transcriptions", form);
    $("#transcribe-text").textContent = result.text;
    rows($("#transcribe-segments"), ["Start (s)", "End (s)", "Text"],
      (result.segments || []).map((s) => [seconds(s.start), seconds(s.end), s.text]));
  });
}
