// DeepFEVER's page: plain JavaScript over the /v1 API, no build step, nothing fetched from elsewhere.
"use strict";

// One colour per emotion, as in annotated images and videos, timelines and maps: deepfever.io.annotate.PALETTE
// (Okabe-Ito, told apart by colour-blind readers; a test keeps the two equal). Faces are numbered from 0, as in tables.
const COLOURS = { neutral: "#555555", happy: "#E69F00", sad: "#0072B2", surprise: "#56B4E9",
  fear: "#CC79A7", disgust: "#009E73", anger: "#D55E00", contempt: "#F0E442" };
const TIMELINE_SAMPLES = 60;

const state = { classes: [], hasIndex: false, photos: [], selected: [], webcam: null };
const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const percent = (p) => `${Math.round(p * 100)}%`;
const colour = (name) => COLOURS[name] || "#BBBBBB";
// Black text on light colours, white on dark ones (by luma), as deepfever.io.annotate.text_colour.
const textColour = (hex) => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b >= 128 ? "#000" : "#fff";
};

// Every API answer is JSON; an error carries "detail": the server's reason, or (422 from validation)
// a list of problems, each with the field it concerns ("loc") and a message.
const reason = (detail) => (Array.isArray(detail)
  ? detail.map((problem) => `${(problem.loc || []).slice(1).join(".")}: ${problem.msg}`).join("; ")
  : detail);

async function api(path, form) {
  const response = await fetch(path, form ? { method: "POST", body: form } : {});
  const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(reason(body.detail) || `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  $("errors").append(element("p", { text: message }));
}

async function loadHealth() {
  try {
    const health = await api("/v1/health");
    state.classes = health.classes;
    state.hasIndex = Boolean(health.index);
    const index = health.index ? `index of ${health.index.faces} faces` : "no index (start with --index for search)";
    $("server-status").textContent = `Model ${health.fingerprint.model_id}, detector ${health.detector}, ${index}.`;
    $("webcam-legend").replaceChildren(...state.classes.map((name) =>
      element("li", {}, [element("i", { style: `background:${colour(name)}` }), name])));
  } catch (error) {
    $("server-status").textContent = `The server does not answer: ${error.message}`;
  }
}

// ---- photos ---------------------------------------------------------------------------------
async function addPhotos(files) {
  $("errors").replaceChildren();
  await Promise.all(Array.from(files).map(analysePhoto));
}

async function analysePhoto(file) {
  const form = new FormData();
  form.append("images", file, file.name);
  try {
    const result = await api("/v1/extract", form);
    const photo = { id: state.photos.length, file, url: URL.createObjectURL(file), image: result.images[0], rows: result.rows };
    state.photos.push(photo);
    $("results").append(renderPhoto(photo));
    if (!photo.rows.length) showError(`${file.name}: no face detected`);
  } catch (error) {
    showError(error.message);
  }
}

function renderPhoto(photo) {
  const frame = element("div", { class: "frame" }, [element("img", { src: photo.url, alt: `Uploaded photo ${photo.file.name}` })]);
  const cards = element("div", { class: "faces" });
  const { width, height } = photo.image;
  for (const row of photo.rows) {
    const label = `Face ${row.face}: ${row.emotion} ${percent(row[`p_${row.emotion}`])}`;
    // Detector boxes may reach past the image edge; draw them clipped to the picture.
    const [x1, x2] = [Math.max(0, row.box_x1), Math.min(width, row.box_x2)];
    const [y1, y2] = [Math.max(0, row.box_y1), Math.min(height, row.box_y2)];
    const box = element("button", {
      type: "button", class: "face-box", "data-photo": photo.id, "data-face": row.face,
      "aria-label": `${label}. Show the nearest expressions`,
      style: `left:${100 * x1 / width}%;top:${100 * y1 / height}%;width:${100 * (x2 - x1) / width}%;height:${100 * (y2 - y1) / height}%;` +
             `border-color:${colour(row.emotion)}`,
    }, [element("span", { class: "face-label", text: `${row.face} ${row.emotion}`,
                          style: `background:${colour(row.emotion)};color:${textColour(colour(row.emotion))}` })]);
    box.addEventListener("click", () => searchFace(photo, row));
    frame.append(box);
    cards.append(renderFaceCard(photo, row, label));
  }
  return element("article", { class: "photo" }, [element("h2", { text: photo.file.name }),
    element("div", { class: "photo-body" }, [frame, cards])]);
}

function renderFaceCard(photo, row, label) {
  const bars = element("ul", { class: "bars", "aria-label": `Emotion probabilities of face ${row.face}` });
  for (const name of state.classes) {
    const p = row[`p_${name}`];
    bars.append(element("li", {}, [
      element("span", { text: name }),
      element("span", { class: "bar" }, [element("i", { style: `width:${100 * p}%;background:${colour(name)}` })]),
      element("span", { class: "value", text: percent(p) }),
    ]));
  }
  const similar = element("button", { type: "button", text: "Similar expressions" });
  similar.addEventListener("click", () => searchFace(photo, row));
  const compare = element("button", { type: "button", class: "compare-toggle", "aria-pressed": "false", text: "Compare" });
  compare.addEventListener("click", () => toggleCompare(photo, row, compare));
  return element("div", { class: "face-card" }, [element("h3", { text: label }), bars,
    element("div", { class: "actions" }, [similar, compare])]);
}

async function searchFace(photo, row) {
  const panel = $("search-panel");
  panel.hidden = false;
  $("search-title").textContent = `Nearest expressions to face ${row.face} of ${photo.file.name} (${row.emotion})`;
  $("search-grid").replaceChildren();
  if (!state.hasIndex) {
    $("search-status").textContent = "This server has no index: start it with deepfever serve --index INDEX.";
    return;
  }
  $("search-status").textContent = "Searching…";
  const form = new FormData();
  form.append("image", photo.file, photo.file.name);
  form.append("face", row.face);
  form.append("k", 12);
  try {
    const result = await api("/v1/search", form);
    $("search-status").textContent = `${result.results.length} nearest faces, most similar first.`;
    $("search-grid").replaceChildren(...result.results.map(renderHit));
    panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (error) {
    $("search-status").textContent = error.message;
  }
}

function renderHit(hit) {
  const name = String(hit.path).split(/[\\/]/).pop();
  const image = hit.thumbnail ? element("img", { src: hit.thumbnail, alt: `Face ${hit.face} of ${name}`, loading: "lazy" })
                              : element("div", { class: "no-thumbnail", text: "no thumbnail" });
  const caption = element("figcaption", {}, [
    element("span", { text: `${hit.rank}. ${hit.emotion || ""} · similarity ${hit.similarity.toFixed(2)}` }),
    element("span", { class: "file", text: name }),
  ]);
  return element("figure", { class: "hit" }, [image, caption]);
}

function toggleCompare(photo, row, button) {
  const key = `${photo.id}:${row.face}`;
  const position = state.selected.findIndex((item) => item.key === key);
  if (position >= 0) {
    state.selected.splice(position, 1);
    button.setAttribute("aria-pressed", "false");
  } else {
    if (state.selected.length === 2) state.selected.shift().button.setAttribute("aria-pressed", "false");
    state.selected.push({ key, photo, row, button });
    button.setAttribute("aria-pressed", "true");
  }
  if (state.selected.length === 2) compareSelected();
}

// Plain words for a percentile among random pairs of reference faces.
function verdict(percentile) {
  if (percentile < 5) return "very similar expressions";
  if (percentile < 25) return "similar expressions";
  if (percentile < 75) return "as alike as two random faces";
  return "different expressions";
}

async function compareSelected() {
  const [first, second] = state.selected;
  const panel = $("compare-panel");
  panel.hidden = false;
  $("compare-result").textContent = "Comparing…";
  const form = new FormData();
  form.append("a", first.photo.file, first.photo.file.name);
  form.append("b", second.photo.file, second.photo.file.name);
  form.append("face_a", first.row.face);
  form.append("face_b", second.row.face);
  try {
    const result = await api("/v1/compare", form);
    const pair = `Face ${first.row.face} of ${first.photo.file.name} (${result.emotion_a}) and face ${second.row.face} of ` +
                 `${second.photo.file.name} (${result.emotion_b})`;
    const meaning = result.percentile === null
      ? "No reference set on this server, so no percentile (start it with --index or --reference)."
      : `${verdict(result.percentile)}: ${result.interpretation}.`;
    $("compare-result").textContent = `${pair}: expression distance ${result.cosine_distance.toFixed(3)}. ${meaning}`;
  } catch (error) {
    $("compare-result").textContent = error.message;
  }
}

// ---- webcam ---------------------------------------------------------------------------------
async function startWebcam() {
  const video = $("webcam-video");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    $("webcam-status").textContent = `No camera: ${error.message}`;
    return;
  }
  state.webcam = { samples: [], timer: null, busy: false };
  $("webcam-toggle").textContent = "Stop webcam";
  $("webcam-status").textContent = "Watching…";
  state.webcam.timer = setInterval(sampleFrame, Number($("webcam-interval").value));
}

function stopWebcam() {
  if (!state.webcam) return;
  clearInterval(state.webcam.timer);
  const stream = $("webcam-video").srcObject;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  $("webcam-video").srcObject = null;
  state.webcam = null;
  $("webcam-toggle").textContent = "Start webcam";
  $("webcam-status").textContent = "The webcam is off.";
}

// One frame at a time: a sample is skipped while the previous one is still being answered.
async function sampleFrame() {
  const webcam = state.webcam;
  const video = $("webcam-video");
  if (!webcam || webcam.busy || !video.videoWidth) return;
  webcam.busy = true;
  const canvas = element("canvas", { width: video.videoWidth, height: video.videoHeight });
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  const form = new FormData();
  form.append("images", blob, "webcam.jpg");
  try {
    const result = await api("/v1/extract", form);
    const row = result.rows[0];
    webcam.samples.push(row || null);
    if (webcam.samples.length > TIMELINE_SAMPLES) webcam.samples.shift();
    $("webcam-status").textContent = row
      ? `${result.rows.length} face(s); face 0: ${row.emotion} ${percent(row[`p_${row.emotion}`])}`
      : "No face in view.";
    drawTimeline(webcam.samples);
  } catch (error) {
    $("webcam-status").textContent = error.message;
  } finally {
    webcam.busy = false;
  }
}

function drawTimeline(samples) {
  const canvas = $("webcam-timeline");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 24;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#d5d9e0";
  context.fillStyle = "#5b6472";
  context.font = "12px system-ui, sans-serif";
  for (const level of [0, 0.5, 1]) {
    const y = height - pad - level * (height - 2 * pad);
    context.beginPath(); context.moveTo(pad, y); context.lineTo(width - 4, y); context.stroke();
    context.fillText(percent(level), 0, y + 4);
  }
  const x = (i) => pad + (i / (TIMELINE_SAMPLES - 1)) * (width - pad - 4);
  const y = (p) => height - pad - p * (height - 2 * pad);
  for (const name of state.classes) {
    context.strokeStyle = colour(name);
    context.lineWidth = 2;
    context.beginPath();
    let drawing = false;
    samples.forEach((row, i) => {  // a frame without a face leaves a gap in every line
      if (!row) { drawing = false; return; }
      if (drawing) context.lineTo(x(i), y(row[`p_${name}`])); else context.moveTo(x(i), y(row[`p_${name}`]));
      drawing = true;
    });
    context.stroke();
  }
  context.fillStyle = "#5b6472";
  context.fillText(`last ${samples.length} samples; gaps: no face`, pad, height - 6);
}

// ---- wiring ---------------------------------------------------------------------------------
function setMode(webcam) {
  $("mode-photos").setAttribute("aria-pressed", String(!webcam));
  $("mode-webcam").setAttribute("aria-pressed", String(webcam));
  $("photos-panel").hidden = webcam;
  $("webcam-panel").hidden = !webcam;
  if (!webcam) stopWebcam();
}

function wire() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => addPhotos(event.target.files));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => { event.preventDefault(); zone.classList.remove("over"); addPhotos(event.dataTransfer.files); });
  $("mode-photos").addEventListener("click", () => setMode(false));
  $("mode-webcam").addEventListener("click", () => setMode(true));
  $("webcam-toggle").addEventListener("click", () => (state.webcam ? stopWebcam() : startWebcam()));
  drawTimeline([]);
}

wire();
loadHealth();
