// The cnnpipe page: calls the service's own HTTP API (same origin), so limits and error messages are
// the API's. No framework, no build step, nothing fetched from anywhere but this server.

const $ = (selector, root = document) => root.querySelector(selector);
const SAMPLES = ["samples/shapes.png", "samples/stripes.png", "samples/rings.png"];

// ------------------------------------------------------------------------------------ the API

let token = sessionStorage.getItem("cnnpipe-token") || "";

class ApiError extends Error {}

async function api(path, { form, json, method = "POST" } = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const init = { method, headers };
  if (form) init.body = form;
  if (json) {
    init.body = JSON.stringify(json);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("the server cannot be reached");
  }
  if (response.status === 401) {
    $("#token-form").hidden = false;
    throw new ApiError("this server needs a token: enter it at the top of the page");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message; // every API error body is {"error": "..."}
    } catch {}
    throw new ApiError(message);
  }
  return response;
}

function showError(panel, error) {
  const box = $(".error", panel);
  box.textContent = error ? (error instanceof ApiError ? error.message : `unexpected: ${error.message}`) : "";
  box.hidden = !error;
}

// ------------------------------------------------------------------------- tabs and image input

function selectTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    $(`#${tab.dataset.tab}`).hidden = !selected;
  }
}

const chosen = {}; // panel id → the File (or Blob) picked there

function makePicker(container, onImage) {
  container.append($("#picker").content.cloneNode(true));
  const drop = $(".drop", container);
  const input = $("input[type=file]", container);
  const take = (file) => {
    if (!file) return;
    chosen[container.dataset.for] = file;
    onImage(file);
  };
  input.addEventListener("change", () => take(input.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    take(event.dataTransfer.files[0]);
  });
  for (const url of SAMPLES) {
    const button = document.createElement("button");
    button.type = "button";
    button.title = url.split("/").pop();
    button.innerHTML = `<img src="${url}" alt="${button.title}">`;
    button.addEventListener("click", async () => {
      const blob = await (await fetch(url)).blob();
      take(new File([blob], button.title, { type: blob.type }));
    });
    $(".samples", container).append(button);
  }
}

document.addEventListener("paste", (event) => {
  const file = [...event.clipboardData.files][0];
  const panel = document.querySelector("[role=tabpanel]:not([hidden])");
  const input = panel && $("input[type=file]", panel);
  if (file && input) {
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change"));
  }
});

function imageForm(file, fields = {}) {
  const form = new FormData();
  form.append("image", file, file.name || "upload");
  for (const [key, value] of Object.entries(fields)) form.append(key, String(value));
  return form;
}

// -------------------------------------------------------------------------------------- classify

const painted = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

async function classify(file) {
  const panel = $("#classify");
  const started = performance.now();
  showError(panel, null);
  delete panel.dataset.ms;
  $(".preview", panel).src = URL.createObjectURL(file);
  const bars = $(".bars", panel);
  bars.textContent = "…";
  try {
    const body = await (await api("/classify", { form: imageForm(file) })).json();
    const result = Array.isArray(body) ? body[0] : body;
    bars.replaceChildren(
      ...result.top_k.map(({ label, probability }) => {
        const bar = document.createElement("div");
        bar.className = "bar";
        bar.dataset.label = label;
        bar.innerHTML = `<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
        $(".name", bar).textContent = label;
        $(".fill", bar).style.width = `${(probability * 100).toFixed(1)}%`;
        $(".pct", bar).textContent = `${(probability * 100).toFixed(1)} %`;
        return bar;
      }),
    );
    await painted();
    panel.dataset.ms = (performance.now() - started).toFixed(1); // upload picked → bars on screen
    $(".facts", panel).textContent = `${result.model_version ? `model ${result.model_version}, ` : ""}${panel.dataset.ms} ms`;
    await explainClass(file, result.index);
  } catch (error) {
    bars.textContent = "";
    showError(panel, error);
  }
}

async function explainClass(file, target) {
  const panel = $("#classify");
  const body = await (await api("/explain", { form: imageForm(file, { target }) })).json();
  const bytes = Uint8Array.from(atob(body.overlay_png), (c) => c.charCodeAt(0));
  $("#cam").src = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
  $("#cam").dataset.target = body.target;
  $("#cam-class").value = String(body.target);
  $(".cam", panel).hidden = false;
}

async function explainChosen() {
  showError($("#classify"), null);
  try {
    await explainClass(chosen.classify, Number($("#cam-class").value));
  } catch (error) {
    showError($("#classify"), error);
  }
}

// -------------------------------------------------------------------------------- super-resolve

async function superResolve() {
  const panel = $("#superres");
  const file = chosen.superres;
  showError(panel, null);
  delete panel.dataset.ms;
  const scale = Number($("#scale").value);
  const ensemble = $("#self-ensemble").checked;
  const facts = $(".facts", panel);
  facts.textContent = "upscaling…";
  const started = performance.now();
  try {
    const fields = ensemble ? { scale, self_ensemble: true } : { scale };
    const blob = await (await api("/super_resolve", { form: imageForm(file, fields) })).blob();
    const elapsed = performance.now() - started;
    const [input, output] = await Promise.all([decode(file), decode(blob)]);
    facts.textContent = `${input.width}×${input.height} → ${output.width}×${output.height} (×${scale}${ensemble ? ", self-ensemble" : ""}) in ${elapsed.toFixed(0)} ms`;
    facts.dataset.width = output.width;
    facts.dataset.height = output.height;
    const after = $(".compare .after", panel);
    after.src = URL.createObjectURL(blob);
    const before = $(".compare .before", panel);
    before.width = output.width;
    before.height = output.height;
    const context = before.getContext("2d");
    context.imageSmoothingQuality = "high"; // the browser's bicubic-class resampling
    context.drawImage(input, 0, 0, output.width, output.height);
    $(".compare", panel).hidden = false;
    const link = $("#download");
    link.href = after.src;
    link.download = `${(file.name || "image").replace(/\.[^.]*$/, "")}_x${scale}.png`;
    link.hidden = false;
    await painted();
    panel.dataset.ms = (performance.now() - started).toFixed(1); // click → result and bicubic on screen
  } catch (error) {
    facts.textContent = "";
    showError(panel, error);
  }
}

async function decode(blob) {
  try {
    return await createImageBitmap(blob);
  } catch {
    throw new ApiError("the browser cannot show this image");
  }
}

// ------------------------------------------------------------------- tasks: DeepDream, style transfer

// Each long job is a BentoML task: submit, then poll its progress and status, get the PNG; Cancel
// asks the server to stop it at its next step.
const TASKS = {
  dream: { task: "deepdream_task", progress: "deepdream_progress", cancel: "deepdream_cancel" },
  style: { task: "style_transfer", progress: "style_transfer_progress", cancel: "style_transfer_cancel" },
};
const running = {}; // panel id → task id

async function runTask(kind, form) {
  const routes = TASKS[kind];
  const panel = $(`#${kind}`);
  const state = $(`#${kind}-state`);
  const bar = $(`#${kind}-progress`);
  const result = $(`#${kind}-result`);
  showError(panel, null);
  bar.value = 0;
  result.hidden = true;
  let task;
  try {
    task = (await (await api(`/${routes.task}/submit`, { form })).json()).task_id;
  } catch (error) {
    showError(panel, error);
    return;
  }
  running[kind] = task;
  $(`#${kind}-start`).disabled = true;
  $(`#${kind}-cancel`).disabled = false;
  state.textContent = "queued";
  try {
    for (;;) {
      const progress = await (await api(`/${routes.progress}`, { json: { task_id: task } })).json();
      bar.value = progress.fraction;
      if (progress.step !== undefined) {
        state.textContent = kind === "dream" ? `octave ${progress.octave}, step ${progress.step}` : `step ${progress.step}`;
      }
      const { status } = await (await api(`/${routes.task}/status?task_id=${task}`, { method: "GET" })).json();
      if (status === "completed") {
        const blob = await (await api(`/${routes.task}/get?task_id=${task}`, { method: "GET" })).blob();
        result.src = URL.createObjectURL(blob);
        result.hidden = false;
        bar.value = 1; // a task can finish between the progress poll and the status poll
        state.textContent = "done";
        break;
      }
      if (status === "failed" || status === "canceled") {
        const last = await (await api(`/${routes.progress}`, { json: { task_id: task } })).json();
        if (last.cancelled) {
          state.textContent = `cancelled (${last.error})`;
        } else {
          state.textContent = "failed";
          await api(`/${routes.task}/get?task_id=${task}`, { method: "GET" }); // throws with the API's message
        }
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    showError(panel, error);
  } finally {
    delete running[kind];
    $(`#${kind}-start`).disabled = false;
    $(`#${kind}-cancel`).disabled = true;
  }
}

async function cancelTask(kind) {
  if (!running[kind]) return;
  $(`#${kind}-state`).textContent = "cancelling…";
  try {
    await api(`/${TASKS[kind].cancel}`, { json: { task_id: running[kind] } });
  } catch (error) {
    showError($(`#${kind}`), error);
  }
}

function startDream() {
  const layers = [...$("#layers").selectedOptions].map((option) => option.value);
  const fields = { octaves: $("#octaves").value, steps: $("#steps").value };
  if (layers.length) fields.layers = JSON.stringify(layers);
  return runTask("dream", imageForm(chosen.dream, fields));
}

function startStyle() {
  const form = imageForm(chosen["style-content"], { steps: $("#style-steps").value, style_weight: $("#style-weight").value });
  const style = chosen["style-style"];
  form.append("style", style, style.name || "style");
  return runTask("style", form);
}

function pickedForStyle(which) {
  return (file) => {
    $(`#style .preview.${which}`).src = URL.createObjectURL(file);
    $("#style-start").disabled = !(chosen["style-content"] && chosen["style-style"]);
  };
}

// ---------------------------------------------------------------------------------------- models

function scores(metrics) {
  if (!metrics) return "";
  if (typeof metrics.accuracy === "number") return `test accuracy ${(metrics.accuracy * 100).toFixed(2)} %`;
  return Object.entries(metrics)
    .filter(([, value]) => value && typeof value === "object" && "psnr_model" in value)
    .map(([set, value]) => `${set}: ${value.psnr_model.toFixed(2)} dB (bicubic ${value.psnr_bicubic.toFixed(2)})`)
    .join("; ");
}

function showModels(meta) {
  const rows = meta.models.map((model) => {
    const row = document.createElement("tr");
    const origin = model.provenance || {};
    const commit = origin.commit ? origin.commit.slice(0, 10) + (origin.dirty ? " (modified)" : "") : "–";
    for (const text of [model.name, model.version, model.sha256.slice(0, 16) + "…", commit, origin.experiment || "–", scores(origin.metrics)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  $("#model-table tbody").replaceChildren(...rows);
  $("#model-facts").textContent =
    `cnnpipe ${meta.cnnpipe_version}; classes: ${meta.classes.join(", ")}; ` +
    `uploads up to ${(meta.limits.max_upload_bytes / 1048576).toFixed(0)} MiB and ${meta.limits.max_pixels} pixels`;
}

// ----------------------------------------------------------------------------------------- start

async function start() {
  for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("#token").value;
    sessionStorage.setItem("cnnpipe-token", token);
    $("#token-form").hidden = true;
    load();
  });
  makePicker($('.picker[data-for="classify"]'), classify);
  makePicker($('.picker[data-for="superres"]'), () => ($("#upscale").disabled = false));
  makePicker($('.picker[data-for="dream"]'), () => ($("#dream-start").disabled = false));
  makePicker($('.picker[data-for="style-content"]'), pickedForStyle("content"));
  makePicker($('.picker[data-for="style-style"]'), pickedForStyle("style"));
  $("#upscale").addEventListener("click", superResolve);
  $("#cam-class").addEventListener("change", explainChosen);
  $("#dream-start").addEventListener("click", startDream);
  $("#dream-cancel").addEventListener("click", () => cancelTask("dream"));
  $("#style-start").addEventListener("click", startStyle);
  $("#style-cancel").addEventListener("click", () => cancelTask("style"));
  $(".compare .slider").addEventListener("input", (event) => {
    $(".compare").style.setProperty("--pos", `${event.target.value}%`);
  });
  await load();
}

async function load() {
  try {
    const meta = await (await api("/metadata", { method: "GET" })).json();
    $("#scale").replaceChildren(...meta.scales.map((scale) => new Option(`×${scale}`, scale)));
    $("#cam-class").replaceChildren(...meta.classes.map((name, index) => new Option(name, index)));
    $("#layers").replaceChildren(
      ...meta.dream_layers.map((layer) => new Option(layer, layer, false, layer === meta.dream_default_layer)),
    );
    showModels(meta);
    document.body.dataset.ready = "true";
  } catch (error) {
    for (const panel of document.querySelectorAll("[role=tabpanel]")) showError(panel, error);
  }
}

start();
