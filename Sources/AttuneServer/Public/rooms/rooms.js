// The rooms page: join a room over /ws/rooms, share the microphone as track "mic" (binary
// frames: the track id's length, the id, then 16 kHz PCM16) and, if chosen, the camera
// (`video_frame`), and show a tile per participant with their live emotion, its confidence and
// a small timeline.
import { openCamera } from '/camera.js';

const $ = (id) => document.getElementById(id);
// Read by the browser tests.
const stats = window.roomsStats = { joined: false, participants: [], updates: {}, sources: [], transcripts: [], errors: [], framesSent: 0, videoFramesSent: 0 };
// Camera frames: two a second, JPEG quality 0.8 (the video design's defaults).
const CAMERA_FPS = 2;
const CAMERA_QUALITY = 0.8;
const COLORS = { anger: '#d9480f', disgust: '#5c940d', fear: '#7048e8', happiness: '#f59f00', neutral: '#868e96', sadness: '#1c7ed6', surprise: '#d6336c' };
const TRACK = 'mic';
const API_TOKEN = localStorage.getItem('attune.token') || '';

let socket = null;
let me = null;
let audio = null;
let camera = null;  // the function that stops the camera
const tiles = new Map();

function setConnection(state, text) {
  $('connection').dataset.state = state;
  $('connection').textContent = text;
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function tile(participant) {
  let entry = tiles.get(participant.user_id);
  if (!entry) {
    const item = document.createElement('li');
    item.className = 'tile' + (participant.user_id === me ? ' me' : '');
    item.dataset.user = participant.user_id;
    item.innerHTML = '<h2></h2><p><span class="emotion">—</span> <span class="confidence"></span></p><div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100" aria-label="Confidence"><span style="width:0"></span></div><canvas width="240" height="48" aria-label="Valence over time"></canvas><p class="said"></p>';
    item.querySelector('h2').textContent = participant.user_id + (participant.user_id === me ? ' (you)' : '');
    $('tiles').append(item);
    entry = { item, history: [] };
    tiles.set(participant.user_id, entry);
  }
  if (participant.emotion) showEmotion(participant.emotion);
  return entry;
}

function showEmotion(update) {
  const entry = tile({ user_id: update.user_id });
  const label = entry.item.querySelector('.emotion');
  label.textContent = update.emotion;
  label.style.color = COLORS[update.emotion] || 'inherit';
  const percent = Math.round(update.confidence * 100);
  const meter = entry.item.querySelector('.meter');
  meter.setAttribute('aria-valuenow', String(percent));
  meter.querySelector('span').style.width = `${percent}%`;
  const source = update.source ? `${update.source.channel} (${update.source.kind})` : update.channel;
  entry.item.querySelector('.confidence').textContent = `${percent}% sure, latest from ${source}`;
  entry.history.push(update);
  if (entry.history.length > 60) entry.history.shift();
  drawTimeline(entry.item.querySelector('canvas'), entry.history);
}

function drawTimeline(canvas, history) {
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.strokeStyle = '#e3e6ee';
  context.beginPath();
  context.moveTo(0, canvas.height / 2);
  context.lineTo(canvas.width, canvas.height / 2);
  context.stroke();
  history.forEach((update, index) => {
    const x = history.length === 1 ? canvas.width / 2 : (index / (history.length - 1)) * (canvas.width - 6) + 3;
    const y = (1 - (update.valence + 1) / 2) * (canvas.height - 6) + 3;
    context.fillStyle = COLORS[update.emotion] || '#868e96';
    context.beginPath();
    context.arc(x, y, 3, 0, 2 * Math.PI);
    context.fill();
  });
}

function removeTile(user) {
  const entry = tiles.get(user);
  if (entry) entry.item.remove();
  tiles.delete(user);
}

function handle(message) {
  const data = message.data || {};
  switch (message.type) {
    case 'room_joined':
      stats.joined = true;
      setConnection('open', `In room ${data.room_id}`);
      data.participants.forEach(tile);
      stats.participants = data.participants.map((p) => p.user_id);
      startMicrophone();
      if ($('share-camera').checked) startCamera();
      break;
    case 'participant_joined':
      tile(data.participant);
      stats.participants.push(data.user_id);
      break;
    case 'participant_left':
      if (data.user_id === me) break;
      removeTile(data.user_id);
      stats.participants = stats.participants.filter((user) => user !== data.user_id);
      break;
    case 'emotion_update':
      (stats.updates[data.user_id] = stats.updates[data.user_id] || []).push(data.emotion);
      if (data.source) stats.sources.push(`${data.user_id}:${data.source.channel}`);
      showEmotion(data);
      break;
    case 'transcript':
      stats.transcripts.push(data);
      tile({ user_id: data.user_id }).item.querySelector('.said').textContent = `“${data.text}”`;
      break;
    case 'error':
      stats.errors.push(data.code);
      notice(`${data.code}: ${data.message}`);
      if (!stats.joined && (data.code === 'unauthorized' || data.code === 'room_full' || data.code === 'name_taken')) leave();
      break;
  }
}

async function startMicrophone() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } });
    const context = new AudioContext();
    await context.audioWorklet.addModule('/capture-worklet.js');
    const node = new AudioWorkletNode(context, 'capture-processor');
    const header = new Uint8Array([TRACK.length, ...new TextEncoder().encode(TRACK)]);
    node.port.onmessage = (event) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const frame = new Uint8Array(header.length + event.data.byteLength);
      frame.set(header, 0);
      frame.set(new Uint8Array(event.data), header.length);
      socket.send(frame.buffer);
      stats.framesSent += 1;
    };
    context.createMediaStreamSource(stream).connect(node);
    audio = { stream, context };
    send({ type: 'audio_track_added', track_id: TRACK });
  } catch (error) {
    notice(`The microphone is not available (${error.message}); you can still see the others.`);
  }
}

async function startCamera() {
  try {
    camera = await openCamera(document.createElement('video'), {
      fps: CAMERA_FPS, quality: CAMERA_QUALITY,
      onFrame: (frame) => {
        if (!socket || socket.readyState !== WebSocket.OPEN) return;
        send({ type: 'video_frame', frame, timestamp: Date.now() / 1000 });
        stats.videoFramesSent += 1;
      },
    });
  } catch (error) {
    notice(`The camera is not available (${error.message}); your voice is still shared.`);
  }
}

function stopCamera() {
  if (!camera) return;
  camera();
  camera = null;
}

function stopMicrophone() {
  if (!audio) return;
  audio.stream.getTracks().forEach((track) => track.stop());
  audio.context.close();
  audio = null;
}

function join(event) {
  event.preventDefault();
  if (!$('join-form').reportValidity()) return;
  me = $('name').value;
  notice('');
  const query = API_TOKEN ? `?token=${encodeURIComponent(API_TOKEN)}` : '';
  socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/rooms${query}`);
  socket.binaryType = 'arraybuffer';
  setConnection('connecting', 'Joining…');
  socket.onopen = () => {
    const message = { type: 'join_room', room_id: $('room').value, user_id: me, user_info: { name: me } };
    if ($('join-token').value) message.token = $('join-token').value;
    send(message);
    $('join').hidden = true;
    $('leave').hidden = false;
  };
  socket.onmessage = (message) => { if (typeof message.data === 'string') handle(JSON.parse(message.data)); };
  socket.onclose = () => { if (socket) leave(); };
}

function leave() {
  stopMicrophone();
  stopCamera();
  if (socket) {
    const closing = socket;
    socket = null;
    if (closing.readyState === WebSocket.OPEN) closing.send(JSON.stringify({ type: 'leave_room' }));
    closing.close();
  }
  stats.joined = false;
  tiles.forEach((_, user) => removeTile(user));
  setConnection('closed', 'Not in a room');
  $('join').hidden = false;
  $('leave').hidden = true;
}

$('join-form').addEventListener('submit', join);
$('leave').addEventListener('click', leave);
// A link like /rooms/?room=team&name=ann fills the form.
const params = new URLSearchParams(location.search);
if (params.get('room')) $('room').value = params.get('room');
if (params.get('name')) $('name').value = params.get('name');
