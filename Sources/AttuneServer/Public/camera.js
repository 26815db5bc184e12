// Camera frames as JPEG data URLs, for the pages' `video_frame` messages: the camera plays in
// `video`, and every 1/fps seconds its picture goes to `onFrame` at JPEG `quality`.
// Returns the function that stops the camera.
export async function openCamera(video, { fps, quality, onFrame }) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  video.muted = true;
  video.srcObject = stream;
  await video.play();
  const grab = document.createElement('canvas');
  const timer = setInterval(() => {
    if (!video.videoWidth) return;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext('2d').drawImage(video, 0, 0);
    onFrame(grab.toDataURL('image/jpeg', quality));
  }, 1000 / fps);
  return () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
  };
}
