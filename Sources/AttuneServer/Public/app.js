// The companion page: microphone → /ws/conversation, events → transcript, chat, emotion panel,
// timeline and gapless reply playback. Plain browser APIs, no dependencies.

import { openCamera } from '/camera.js';

const LABELS = ['anger', 'disgust', 'fear', 'joy', 'neutral', 'sadness', 'surprise'];
const EMOJI = { anger: '😠', disgust: '🤢', fear: '😨', joy: '😊', neutral: '😐', sadness: '😢', surprise: '😮' };
const COLORS = Object.fromEntries(LABELS.map((l) => [l, getComputedStyle(document.documentElement).getPropertyValue(`--${l}`).trim()]));
const $ = (id) => document.getElementById(id);

// What tests and curious people can inspect: counters of what happened on the page.
const stats = window.attuneStats = { uploads: [], connected: 0, audioFramesSent: 0, replyFramesReceived: 0, replyFramesPlayed: 0, stopped: 0, transcripts: [], channels: {}, videoFramesSent: 0, faces: [] };

// MARK: - Connection

let socket = null;
let reconnectDelay = 500;
// The server closes sessions that send nothing for stream.idle_timeout_s; an open page pings.
let keepAlive = null;
let sessionID = null;

// MARK: - Access token

// A server started with server.api_token asks for it on /api/* and the WebSocket. The page asks
// the person once and keeps it in this browser's localStorage.
const TOKEN_KEY = 'attune.token';
let token = localStorage.getItem(TOKEN_KEY) || '';

// fetch() with the token; on 401 asks for it (once per refusal) and tries again.
async function api(path, options = {}) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const headers = Object.assign({}, options.headers || {}, token ? { Authorization: `Bearer ${token}` } : {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status !== 401) return response;
    const entered = window.prompt('This Attune server needs an access token (server.api_token):', '');
    if (entered === null) return response;
    token = entered.trim();
    localStorage.setItem(TOKEN_KEY, token);
  }
  throw new Error('access token refused');
}

async function apiJSON(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function connect() {
  setConnection('connecting', 'Connecting…');
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/conversation${query}`;
  socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => {
    reconnectDelay = 500;
    stats.connected += 1;
    setConnection('open', 'Connected');
    hideNotice('server');
    sendSettings();
    clearInterval(keepAlive);
    keepAlive = setInterval(() => send({ type: 'ping' }), 30000);
  };
  socket.onmessage = (message) => {
    if (typeof message.data === 'string') handleEvent(JSON.parse(message.data));
    else playback.frame(message.data);
  };
  socket.onclose = () => {
    clearInterval(keepAlive);
    setConnection('closed', `Disconnected, retrying in ${Math.round(reconnectDelay / 1000)} s…`);
    showNotice('server', 'The server is not reachable. Attune reconnects by itself when it is back.');
    playback.stopAll();
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 8000);
  };
}

function send(object) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(object));
}

function setConnection(state, text) {
  const element = $('connection');
  element.dataset.state = state;
  element.textContent = text;
}

const notices = new Map();
function showNotice(key, text) { notices.set(key, text); renderNotice(); }
function hideNotice(key) { notices.delete(key); renderNotice(); }
function renderNotice() {
  const element = $('notice');
  element.hidden = notices.size === 0;
  element.textContent = [...notices.values()].join(' ');
}

// MARK: - Microphone

let capture = null;

async function startListening() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } });
    const context = new AudioContext();
    await context.audioWorklet.addModule('/capture-worklet.js');
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, 'capture-processor');
    node.port.onmessage = (event) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(event.data);
        stats.audioFramesSent += 1;
      }
    };
    source.connect(node);
    capture = { stream, context, node };
    hideNotice('mic');
    setMic(true);
  } catch (error) {
    showNotice('mic', `The microphone is not available (${error.name === 'NotAllowedError' ? 'permission denied' : error.message}). Allow it in the browser, or type below.`);
    setMic(false);
  }
}

function stopListening() {
  if (!capture) return;
  capture.node.disconnect();
  capture.stream.getTracks().forEach((track) => track.stop());
  capture.context.close();
  capture = null;
  send({ type: 'end_turn' });
  setMic(false);
}

function setMic(on) {
  $('mic').setAttribute('aria-pressed', String(on));
  $('mic-label').textContent = on ? 'Listening… (click to end)' : 'Start talking';
}

$('mic').addEventListener('click', () => (capture ? stopListening() : startListening()));
$('camera').addEventListener('click', () => (camera ? stopCamera() : startCamera()));

$('type-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('typed').value.trim();
  if (!text) return;
  send({ type: 'user_text', text });
  addBubble('user', text, { id: `typed-${Date.now()}` });
  $('typed').value = '';
});

// MARK: - Upload and reply: a dropped or chosen recording goes to POST /api/converse, which
// answers with the transcript, the emotion, the reply and its spoken audio.

async function converseFile(file) {
  const bubble = addBubble('user', `🎙 ${file.name}…`, { id: `upload-${Date.now()}` });
  const params = new URLSearchParams({ persona: $('persona').value, voice: $('voice').value });
  try {
    const response = await api(`/api/converse?${params}`, {
      method: 'POST', body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' },
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : `status ${response.status}`);
    bubble.querySelector('.text').textContent = answer.transcript;
    for (const estimate of Object.values(answer.emotions)) showChannel(estimate);
    if (answer.emotion) {
      tag(bubble, answer.emotion.label);
      showEmotion(answer.emotion);
    }
    addBubble('bot', answer.reply, { id: `upload-reply-${Date.now()}` });
    if (answer.warnings.length) showNotice('upload', answer.warnings.join(' '));
    else hideNotice('upload');
    const upload = { transcript: answer.transcript, reply: answer.reply, emotion: answer.emotion && answer.emotion.label, audioBytes: 0 };
    stats.uploads.push(upload);
    if (answer.audio && answer.audio.url) {
      const wav = await (await api(answer.audio.url)).blob();
      upload.audioBytes = wav.size;
      new Audio(URL.createObjectURL(wav)).play().catch((error) => console.warn('attune: playback', error));
    }
  } catch (error) {
    bubble.classList.add('failed');
    showNotice('upload', `Could not answer ${file.name}: ${error.message}`);
    stats.uploads.push({ error: error.message });
  }
}

$('audio-file').addEventListener('change', () => {
  const file = $('audio-file').files[0];
  if (file) converseFile(file);
  $('audio-file').value = '';
});
document.addEventListener('dragover', (event) => {
  if (!event.dataTransfer || ![...event.dataTransfer.types].includes('Files')) return;
  event.preventDefault();
  $('drop-zone').classList.add('dragging');
});
document.addEventListener('dragleave', () => $('drop-zone').classList.remove('dragging'));
document.addEventListener('drop', (event) => {
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (!file) return;
  event.preventDefault();
  $('drop-zone').classList.remove('dragging');
  converseFile(file);
});

// MARK: - Reply playback (Web Audio, gapless)

const playback = {
  context: null,
  nextTime: 0,
  pendingHeader: null,
  sources: [],
  reply: null,
  replyStart: null,   // context time when the reply's first sample plays
  reportTimer: null,

  ensureContext() {
    if (!this.context) this.context = new AudioContext();
    if (this.context.state === 'suspended') this.context.resume();
    return this.context;
  },

  header(event) { this.pendingHeader = event; },

  frame(buffer) {
    const header = this.pendingHeader;
    this.pendingHeader = null;
    if (!header) return;
    stats.replyFramesReceived += 1;
    const context = this.ensureContext();
    const pcm = new Int16Array(buffer);
    const audio = context.createBuffer(1, pcm.length, header.sample_rate);
    const channel = audio.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
    const source = context.createBufferSource();
    source.buffer = audio;
    source.connect(context.destination);
    if (this.reply !== header.reply) {
      this.reply = header.reply;
      this.nextTime = Math.max(this.nextTime, context.currentTime + 0.05);
      this.replyStart = this.nextTime;
      this.startReports();
    }
    const at = Math.max(this.nextTime, context.currentTime + 0.02);
    source.start(at);
    source.onended = () => {
      stats.replyFramesPlayed += 1;
      this.sources = this.sources.filter((s) => s !== source);
    };
    this.nextTime = at + audio.duration;
    this.sources.push(source);
  },

  playedMs() {
    if (!this.context || this.replyStart === null) return 0;
    return Math.max(0, (this.context.currentTime - this.replyStart) * 1000);
  },

  startReports() {
    clearInterval(this.reportTimer);
    this.reportTimer = setInterval(() => {
      if (this.reply === null) return;
      send({ type: 'playback', reply: this.reply, played_ms: Math.round(this.playedMs()) });
      if (this.context.currentTime > this.nextTime + 0.5) clearInterval(this.reportTimer);
    }, 250);
  },

  stopAll() {
    if (this.reply !== null) send({ type: 'playback', reply: this.reply, played_ms: Math.round(this.playedMs()) });
    this.sources.forEach((source) => { try { source.stop(); } catch (_) { /* already ended */ } });
    this.sources = [];
    clearInterval(this.reportTimer);
    if (this.context) this.nextTime = this.context.currentTime;
    this.reply = null;
    this.replyStart = null;
  },
};

// MARK: - Events

const bubbles = new Map();       // utterance or reply id → bubble element
const timeline = [];              // {time, probabilities, text}
// MARK: - Camera

// Frames go to the server as JPEG data URLs in `video_frame` messages, at the rate and quality
// of the settings (2 a second at 0.8 by default, as the video design sends them); the server's
// `faces` answer is drawn over the preview. `camera` holds the function that stops it.
let camera = null;

async function startCamera() {
  try {
    const fps = Math.min(10, Math.max(0.5, Number($('camera-fps').value) || 2));
    const quality = Math.min(1, Math.max(0.3, Number($('camera-quality').value) || 0.8));
    camera = await openCamera($('camera-video'), {
      fps, quality,
      onFrame: (frame) => {
        if (!socket || socket.readyState !== WebSocket.OPEN) return;
        send({ type: 'video_frame', frame, timestamp: Date.now() / 1000 });
        stats.videoFramesSent += 1;
      },
    });
    $('camera-view').hidden = false;
    hideNotice('camera');
    setCamera(true);
  } catch (error) {
    showNotice('camera', `The camera is not available (${error.name === 'NotAllowedError' ? 'permission denied' : error.message}).`);
    setCamera(false);
  }
}

function stopCamera() {
  if (!camera) return;
  camera();
  camera = null;
  $('camera-view').hidden = true;
  setCamera(false);
}

function setCamera(on) {
  $('camera').setAttribute('aria-pressed', String(on));
  $('camera-label').textContent = on ? 'Camera off' : 'Camera on';
}

// The faces of the latest frame: a box and a label each, in the preview's pixels.
function showFaces(event) {
  stats.faces.push(event.faces.map((face) => face.emotion));
  const video = $('camera-video');
  const overlay = $('camera-overlay');
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  const g = overlay.getContext('2d');
  g.clearRect(0, 0, overlay.width, overlay.height);
  const scale = Math.min(overlay.width / event.width, overlay.height / event.height);
  const dx = (overlay.width - event.width * scale) / 2;
  const dy = (overlay.height - event.height * scale) / 2;
  g.lineWidth = 3;
  g.font = '600 15px system-ui, sans-serif';
  for (const face of event.faces) {
    const color = COLORS[face.emotion] || '#fff';
    const x = dx + face.box.x * scale;
    const y = dy + face.box.y * scale;
    g.strokeStyle = color;
    g.strokeRect(x, y, face.box.width * scale, face.box.height * scale);
    const label = `${EMOJI[face.emotion]} ${face.emotion} ${Math.round(face.confidence * 100)}%`;
    g.fillStyle = color;
    g.fillRect(x, Math.max(0, y - 22), g.measureText(label).width + 10, 22);
    g.fillStyle = '#111';
    g.fillText(label, x + 5, Math.max(16, y - 6));
  }
  $('camera-caption').textContent = event.face_detected
    ? `${event.faces.length} face${event.faces.length > 1 ? 's' : ''}: ${event.faces[0].emotion}`
    : 'No face in view';
}

let pendingUserText = null;

function handleEvent(event) {
  switch (event.type) {
    case 'session_started':
      sessionID = event.session_id;
      break;
    case 'speech_started':
      $('partial').textContent = '…';
      // Barge-in: stop the reply at once (the server's stop_playback follows).
      if (playback.sources.length) playback.stopAll();
      break;
    case 'transcript_partial':
      $('partial').textContent = event.text;
      break;
    case 'transcript_final':
      $('partial').textContent = '';
      if (event.text) {
        stats.transcripts.push(event.text);
        pendingUserText = event.text;
        addBubble('user', event.text, { id: `u${event.utterance}` });
      }
      break;
    case 'emotion':
      showChannel(event);
      // The words of an utterance tag its bubble and mark the timeline; the voice shows beside them.
      if (event.channel !== 'text') break;
      tagUserBubble(event);
      timeline.push({ time: event.time, probabilities: event.probabilities, text: pendingUserText || '' });
      drawTimeline($('timeline'), timeline);
      break;
    case 'emotion_update':
      showEmotion(event);
      break;
    case 'faces':
      showFaces(event);
      break;
    case 'reply_started':
      addBubble('bot', '', { id: `r${event.reply}` });
      break;
    case 'reply_text_delta': {
      const bubble = bubbles.get(`r${event.reply}`) || addBubble('bot', '', { id: `r${event.reply}` });
      bubble.querySelector('.text').textContent += (bubble.querySelector('.text').textContent ? ' ' : '') + event.text;
      break;
    }
    case 'reply_audio':
      playback.header(event);
      break;
    case 'reply_done': {
      const bubble = bubbles.get(`r${event.reply}`);
      if (bubble && event.interrupted) bubble.classList.add('interrupted');
      if (bubble && event.text) bubble.querySelector('.text').textContent = event.text;
      break;
    }
    case 'stop_playback':
      stats.stopped += 1;
      playback.stopAll();
      break;
    case 'configured':
      break;
    case 'error':
      if (event.code === 'llm_unavailable') showNotice('llm', 'The language model is unavailable right now; Attune apologised and will try again on your next turn.');
      else if (event.code === 'tts_failed') showNotice('tts', 'Speech output failed; replies continue as text.');
      else console.warn('attune:', event.code, event.message);
      break;
  }
  if (event.type === 'reply_done' && !event.interrupted) hideNotice('llm');
}

function addBubble(who, text, { id }) {
  const item = document.createElement('li');
  item.className = `bubble ${who}`;
  item.dataset.id = id;
  const span = document.createElement('span');
  span.className = 'text';
  span.textContent = text;
  item.append(span);
  $('chat').append(item);
  item.scrollIntoView({ block: 'end', behavior: 'smooth' });
  bubbles.set(id, item);
  return item;
}

function tagUserBubble(event) {
  const bubble = event.utterance ? bubbles.get(`u${event.utterance}`) : [...$('chat').querySelectorAll('.bubble.user')].pop();
  if (bubble) tag(bubble, event.label);
}

// Marks a bubble of the person's with the emotion read from it (once).
function tag(bubble, label) {
  if (bubble.querySelector('.tag')) return;
  const mark = document.createElement('span');
  mark.className = 'tag';
  mark.dataset.label = label;
  mark.style.background = COLORS[label];
  mark.textContent = `${EMOJI[label]} ${label}`;
  bubble.append(mark);
}

// MARK: - Emotion panel

function buildPanel() {
  for (const label of LABELS) {
    const item = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = label;
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.display = 'block';
    fill.style.background = COLORS[label];
    fill.id = `bar-${label}`;
    track.append(fill);
    const value = document.createElement('span');
    value.id = `bar-${label}-value`;
    value.textContent = '0%';
    item.append(name, track, value);
    $('bars').append(item);
    const legend = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.style.background = COLORS[label];
    legend.append(swatch, document.createTextNode(label));
    $('legend').append(legend);
  }
}

// One channel's latest reading (voice while you speak and per utterance, words per utterance).
function showChannel(estimate) {
  const cell = $(`channel-${estimate.channel}`);
  if (!cell) return;
  cell.textContent = `${EMOJI[estimate.label]} ${estimate.label} ${Math.round(estimate.confidence * 100)}%`;
  cell.dataset.label = estimate.label;
  (stats.channels[estimate.channel] = stats.channels[estimate.channel] || []).push(estimate.label);
}

function showEmotion(estimate) {
  $('emotion-emoji').textContent = EMOJI[estimate.label];
  $('emotion-label').textContent = estimate.label;
  $('emotion-confidence').textContent = `${Math.round(estimate.confidence * 100)}% confident`;
  for (const label of LABELS) {
    const p = estimate.probabilities[label] || 0;
    $(`bar-${label}`).style.width = `${p * 100}%`;
    $(`bar-${label}-value`).textContent = `${Math.round(p * 100)}%`;
  }
  // Arousal 0…1 maps to the plane's -1…1, excited at the top.
  $('plane-point').setAttribute('cx', estimate.valence.toFixed(3));
  $('plane-point').setAttribute('cy', (-(estimate.arousal * 2 - 1)).toFixed(3));
}

// MARK: - Timeline (canvas): one line per class over the session's utterances

function drawTimeline(canvas, points) {
  const g = canvas.getContext('2d');
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.strokeStyle = '#e3e6ee';
  for (let y = 0; y <= 4; y++) { g.beginPath(); g.moveTo(0, (height - 10) * y / 4 + 5); g.lineTo(width, (height - 10) * y / 4 + 5); g.stroke(); }
  if (points.length === 0) return;
  const x = (i) => (points.length === 1 ? width / 2 : 10 + (width - 20) * i / (points.length - 1));
  const y = (p) => height - 5 - (height - 10) * p;
  for (const label of LABELS) {
    g.strokeStyle = COLORS[label];
    g.fillStyle = COLORS[label];
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((point, i) => (i ? g.lineTo(x(i), y(point.probabilities[label] || 0)) : g.moveTo(x(i), y(point.probabilities[label] || 0))));
    g.stroke();
    points.forEach((point, i) => { g.beginPath(); g.arc(x(i), y(point.probabilities[label] || 0), 2.5, 0, Math.PI * 2); g.fill(); });
  }
  canvas.onmousemove = (event) => showTip(canvas, points, event, x);
  canvas.onmouseleave = () => { $('timeline-tip').hidden = true; };
}

function showTip(canvas, points, event, x) {
  const rect = canvas.getBoundingClientRect();
  const px = (event.clientX - rect.left) * canvas.width / rect.width;
  let nearest = 0;
  points.forEach((_, i) => { if (Math.abs(x(i) - px) < Math.abs(x(nearest) - px)) nearest = i; });
  const point = points[nearest];
  const tip = $('timeline-tip');
  if (canvas.id !== 'timeline') return;
  const top = LABELS.map((l) => [l, point.probabilities[l] || 0]).sort((a, b) => b[1] - a[1]).slice(0, 3);
  tip.textContent = `“${point.text}” — ${top.map(([l, p]) => `${l} ${Math.round(p * 100)}%`).join(', ')}`;
  tip.style.left = `${Math.min(event.clientX - rect.left, rect.width - 200)}px`;
  tip.style.top = `${event.clientY - rect.top + 12}px`;
  tip.hidden = false;
}

// MARK: - Settings

async function loadSettings() {
  try {
    // One request first, so a server that needs a token asks for it once, not twice.
    const personas = await apiJSON('/api/personas');
    const voices = await apiJSON('/api/voices');
    for (const persona of personas.personas) $('persona').append(new Option(persona.name, persona.id));
    for (const voice of voices.voices) $('voice').append(new Option(`${voice.name}, ${voice.gender}`, voice.id));
    $('voice').value = voices.default;
  } catch (_) {
    showNotice('settings', 'Could not load personas and voices from the server.');
  }
}

function sendSettings() {
  const settings = { type: 'configure', rate: Number($('rate').value), silence_ms: Number($('silence').value) };
  if ($('persona').value) settings.persona = $('persona').value;
  if ($('voice').value) settings.voice = $('voice').value;
  send(settings);
}

$('rate').addEventListener('input', () => { $('rate-out').textContent = `${Number($('rate').value).toFixed(1)}×`; });
$('silence').addEventListener('input', () => { $('silence-out').textContent = `${$('silence').value} ms`; });
$('settings').addEventListener('change', sendSettings);

// MARK: - Past sessions

async function loadSessions() {
  const list = $('sessions');
  list.textContent = '';
  try {
    const { sessions } = await apiJSON('/api/sessions');
    if (sessions.length === 0) list.append(Object.assign(document.createElement('li'), { textContent: 'No sessions yet.' }));
    for (const session of sessions) {
      const item = document.createElement('li');
      const open = document.createElement('button');
      open.type = 'button';
      open.textContent = `${new Date(session.startedAt * 1000).toLocaleString()} · ${session.turnCount} turns · ${session.persona}`;
      open.addEventListener('click', () => showSession(session.id));
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Delete';
      remove.setAttribute('aria-label', `Delete the session of ${open.textContent}`);
      remove.addEventListener('click', async () => {
        if (!confirm('Delete this session and everything said in it?')) return;
        await api(`/api/sessions/${session.id}`, { method: 'DELETE' });
        $('session-detail').hidden = true;
        loadSessions();
      });
      item.append(open, remove);
      list.append(item);
    }
  } catch (_) {
    list.append(Object.assign(document.createElement('li'), { textContent: 'History is unavailable.' }));
  }
}

async function showSession(id) {
  const record = await apiJSON(`/api/sessions/${id}`);
  $('session-title').textContent = `Session of ${new Date(record.session.startedAt * 1000).toLocaleString()}`;
  const turns = $('session-turns');
  turns.textContent = '';
  const points = [];
  for (const turn of record.turns) {
    const user = document.createElement('li');
    user.className = 'bubble user';
    user.textContent = turn.userText;
    const estimate = turn.fusedEmotion || (turn.emotions && turn.emotions.text);
    if (estimate) {
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.style.background = COLORS[estimate.label];
      tag.textContent = `${EMOJI[estimate.label]} ${estimate.label}`;
      user.append(tag);
      points.push({ probabilities: estimate.probabilities, text: turn.userText });
    }
    const bot = document.createElement('li');
    bot.className = `bubble bot${turn.interrupted ? ' interrupted' : ''}`;
    bot.textContent = turn.replyText;
    turns.append(user, bot);
  }
  drawTimeline($('session-timeline'), points);
  $('session-detail').hidden = false;
}

$('refresh-history').addEventListener('click', loadSessions);

// MARK: - Start

buildPanel();
drawTimeline($('timeline'), timeline);
loadSettings().then(() => { connect(); loadSessions(); });
