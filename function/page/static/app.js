// The page: voices from GET /voices, speech streamed from POST /synthesize and played as it
// arrives, what it cost, and long documents as jobs (POST /jobs, then GET /jobs/<id>).
// Every API call sends the key the user typed; the key is kept in sessionStorage (this tab) only.
import { followMarks, marksSupported } from "./marks.js";
import { PcmPlayer, wavFile } from "./player.js";

const KEY_STORAGE = "serverless-tts.key";
const STREAMED_AS_PCM = new Set(["wav", "pcm"]);
const JOB_POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

let config = null; // /page/config.json: prices, instance size, limits
let askMarks = false; // whether /synthesize takes "marks" here (issue 26)

// --- calling the API ------------------------------------------------------------------------

function api(path, init = {}) {
  const headers = new Headers(init.headers);
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.set("X-API-Key", key);
  return fetch(path, { ...init, headers });
}

// The API's own message for a failed response (an unsupported_language refusal names the language
// it detected), or the status when the body is not the API's JSON.
async function apiError(response) {
  let error = null;
  try {
    error = (await response.json()).error;
  } catch {
    // not JSON: a proxy's page, say
  }
  if (!error) return `HTTP ${response.status} ${response.statusText}`;
  const message = `${error.message} (${error.code}, HTTP ${response.status})`;
  return response.status === 401 ? `${message}. Type the key in the API key field.` : message;
}

function showError(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

// --- key and voices -------------------------------------------------------------------------

async function loadVoices() {
  const select = $("voice");
  const response = await api("/voices");
  if (!response.ok) {
    showError($("error"), `Voices: ${await apiError(response)}`);
    return;
  }
  showError($("error"), "");
  const { voices } = await response.json();
  const names = new Intl.DisplayNames(["en"], { type: "language" });
  const readable = (languages) => languages.map((language) => names.of(language)).join(", ");
  select.querySelectorAll("optgroup").forEach((group) => group.remove());
  const byLanguage = Map.groupBy(voices, (voice) => voice.language);
  for (const [language, spoken] of [...byLanguage].sort()) {
    const group = document.createElement("optgroup");
    group.label = `${names.of(language)} (${language})`;
    for (const voice of spoken) {
      const option = new Option(`${voice.id}: ${voice.description}`, voice.id);
      option.dataset.description = `${voice.engine}, ${voice.sample_rate} Hz: ${voice.description}` +
        (voice.also_reads.length ? `; also reads ${readable(voice.also_reads)}.` : "");
      group.append(option);
    }
    select.append(group);
  }
  describeVoice();
  $("status").textContent = `${voices.length} voices in ${byLanguage.size} languages.`;
  const openapi = await api("/openapi.json");
  askMarks = openapi.ok && marksSupported(await openapi.json());
}

function describeVoice() {
  const option = $("voice").selectedOptions[0];
  $("voice-description").textContent = option?.dataset.description ?? "The text's language picks the voice.";
}

function countText() {
  const count = [...$("text").value].length;
  $("text-count").textContent = `${count} of ${config?.max_chars ?? "?"} characters`;
}

// --- speaking ---------------------------------------------------------------------------------

function request(text) {
  const body = { text, format: $("format").value, speed: Number($("speed").value) };
  if ($("voice").value) body.voice = $("voice").value;
  return body;
}

async function speak(event) {
  event.preventDefault();
  const format = $("format").value;
  // Made inside the click, so the browser lets it play (autoplay policies).
  const context = STREAMED_AS_PCM.has(format) ? new AudioContext() : null;
  $("speak").disabled = true;
  showError($("error"), "");
  $("result").hidden = true;
  $("status").textContent = "Synthesizing…";
  try {
    const body = request($("text").value);
    // SSML and lexicons (issue 26): how the caller fixes what a front end reads wrong. A marked-up
    // text's marks point into its markup, which the transcript does not show: none are asked.
    const ssml = $("ssml").checked;
    if (ssml) body.text_type = "ssml";
    const lexicons = $("lexicons").value.split(",").map((name) => name.trim()).filter(Boolean);
    if (lexicons.length) body.lexicons = lexicons;
    if (askMarks && !ssml) body.marks = ["sentence"];
    await synthesize(body, format, context);
  } catch (error) {
    showError($("error"), error.message);
    $("status").textContent = "Failed.";
  } finally {
    context?.close();
    $("speak").disabled = false;
  }
}

async function synthesize(body, format, context) {
  const started = performance.now();
  const response = await api("/synthesize", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) throw new Error(await apiError(response));
  const rate = Number(response.headers.get("X-Audio-Sample-Rate"));
  const player = context ? new PcmPlayer(context, rate, format === "wav") : null;
  const reader = response.body.getReader();
  let firstByte = null;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      throw new Error("The stream was cut off before its end: the service failed after the first byte, and nothing was stored.");
    }
    if (chunk.done) break;
    firstByte ??= performance.now();
    if (player) {
      player.push(chunk.value);
      $("status").textContent = "Playing while the rest is synthesized…";
    }
  }
  const complete = performance.now();
  const object = response.headers.get("X-Audio-Uri").split("/").pop();
  const stored = await fetchStored(`/audio/${encodeURIComponent(object)}`);
  const replay = $("replay");
  point(replay, "src", format === "pcm" ? wavFile(await stored.arrayBuffer(), rate) : stored);
  const download = $("download");
  point(download, "href", stored);
  download.download = object;
  $("result").hidden = false;

  const replayClock = () => (replay.paused ? null : replay.currentTime);
  replay.onplay = () => showMarks(response.headers, body.text.trim(), replayClock);
  const times = { started, firstByte, complete };
  let duration;
  if (player) {
    duration = player.seconds;
    showStats(response.headers, { ...times, firstSound: player.firstSoundAt, duration });
    $("status").textContent = "Playing…";
    let heard = false;
    showMarks(response.headers, body.text.trim(), () => (heard ? null : context.currentTime - player.origin));
    await player.ended();
    heard = true;
  } else {
    // Sent whole (flac), or a container not played here as it streams: played once stored.
    const playing = new Promise((resolve) => replay.addEventListener("playing", resolve, { once: true }));
    const ended = new Promise((resolve) => replay.addEventListener("ended", resolve, { once: true }));
    await replay.play();
    await playing;
    duration = replay.duration;
    showStats(response.headers, { ...times, firstSound: performance.now(), duration });
    $("status").textContent = "Playing…";
    await ended;
  }
  $("status").textContent = `Played ${duration.toFixed(2)} s of audio.`;
  document.body.dataset.played = duration.toFixed(3);
}

// Highlight each sentence while it is heard, when the response names its speech marks (issue 26);
// the audio plays the same without them.
async function showMarks(headers, text, clock) {
  const uri = headers.get("X-Marks-Uri");
  if (!uri) return;
  const response = await api(`/audio/${encodeURIComponent(uri.split("/").pop())}`);
  if (response.ok) followMarks($("transcript"), text, (await response.json()).marks, clock);
}

// Point an element at a blob, releasing the blob it pointed at before.
function point(element, property, blob) {
  if (element[property].startsWith("blob:")) URL.revokeObjectURL(element[property]);
  element[property] = URL.createObjectURL(blob);
}

async function fetchStored(path) {
  const response = await api(path);
  if (!response.ok) throw new Error(`The stored audio: ${await apiError(response)}`);
  return response.blob();
}

// --- what it cost -----------------------------------------------------------------------------

// Cloud Run bills an instance's vCPUs and memory for the time a request is being served, rounded
// up to the billing increment, plus a fee per request: the browser's request-to-last-byte time is
// that time, plus the network.
function estimatedCost(seconds) {
  const { prices, instance } = config;
  const increment = prices.billing_increment_s;
  const billed = Math.ceil(seconds / increment - 1e-9) * increment;
  const perSecond = instance.vcpu * prices.vcpu_second + instance.memory_gib * prices.gib_second;
  return { billed, dollars: billed * perSecond + prices.request };
}

function showStats(headers, t) {
  const seconds = (t.complete - t.started) / 1000;
  const cost = estimatedCost(seconds);
  const { instance } = config;
  const rows = [
    ["Engine", headers.get("X-Audio-Engine")],
    ["Voice", decodeURIComponent(headers.get("X-Audio-Voice"))],
    ["Cached", headers.get("X-Audio-Cached") === "true" ? "yes (from storage: no synthesis)" : "no"],
    ["Cold start", headers.get("X-Audio-Cold-Start") === "true" ? "yes (this request loaded the model)" : "no"],
    ["Time to first byte", `${Math.round(t.firstByte - t.started)} ms`],
    ["Time to first sound", `${Math.round(t.firstSound - t.started)} ms`],
    ["Synthesis time", `${Math.round(t.complete - t.started)} ms (request to last byte)`],
    ["Audio", `${t.duration.toFixed(2)} s`],
    ["Real-time factor", (seconds / t.duration).toFixed(3)],
    ["Characters", headers.get("X-Audio-Chars")],
    [
      "Estimated cost",
      `$${cost.dollars.toFixed(8)} (${cost.billed.toFixed(1)} s billed at ${instance.vcpu} vCPU and ` +
        `${instance.memory_gib} GiB, plus one request)`,
    ],
  ];
  const list = $("stats");
  list.replaceChildren();
  for (const [name, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    detail.dataset.stat = name;
    list.append(term, detail);
  }
}

// --- jobs -------------------------------------------------------------------------------------

async function submitJob(event) {
  event.preventDefault();
  $("submit-job").disabled = true;
  showError($("job-error"), "");
  $("job-result").hidden = true;
  try {
    const response = await api("/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request($("job-text").value)),
    });
    if (!response.ok) throw new Error(await apiError(response));
    const accepted = await response.json();
    await followJob(accepted);
  } catch (error) {
    showError($("job-error"), error.message);
    $("job-status").textContent = "The job failed.";
  } finally {
    $("submit-job").disabled = false;
  }
}

async function followJob(accepted) {
  const progress = $("job-progress");
  progress.hidden = false;
  progress.max = accepted.parts;
  let job;
  for (;;) {
    const response = await api(accepted.status_url);
    if (!response.ok) throw new Error(await apiError(response));
    job = await response.json();
    progress.value = job.parts_done;
    $("job-status").textContent = `Job ${accepted.job_id}: ${job.parts_done} of ${accepted.parts} parts done (${job.status}).`;
    if (job.status === "failed") throw new Error(`${job.error.message} (${job.error.code})`);
    if (job.status === "succeeded") break;
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
  const audio = await fetchStored(`/jobs/${encodeURIComponent(accepted.job_id)}/audio`);
  const blob = job.format === "pcm" ? wavFile(await audio.arrayBuffer(), job.sample_rate) : audio;
  point($("job-audio"), "src", blob);
  point($("job-download"), "href", audio);
  $("job-download").download = `${accepted.job_id}.${accepted.format}`;
  $("job-result").hidden = false;
  $("job-status").textContent = `Job ${accepted.job_id}: the audio is ready (${accepted.parts} parts).`;
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  $("key").value = sessionStorage.getItem(KEY_STORAGE) ?? "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    loadVoices();
  });
  $("voice").addEventListener("change", describeVoice);
  describeVoice();
  $("text").addEventListener("input", countText);
  $("speed").addEventListener("input", () => {
    $("speed-value").textContent = Number($("speed").value).toFixed(2);
  });
  $("speak-form").addEventListener("submit", speak);
  $("job-form").addEventListener("submit", submitJob);
  config = await (await fetch("/page/config.json")).json();
  countText();
  await loadVoices();
  document.body.dataset.ready = "true";
}

start();
