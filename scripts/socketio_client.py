"""A real Socket.IO client (python-socketio, the setup group `socketio`) for the tests: connects
to Attune's /socket.io/, sends camera frames as `video_frame`, and prints one JSON line with what
came back, so that a test can judge it.

    python3 scripts/socketio_client.py --url http://127.0.0.1:8080 --frame frame.jpg [--transport websocket]

Prints {"transport", "processed": [emotion_processed payloads], "updates": [emotion_update
payloads], "errors": [emotion_error payloads], "ack": the acknowledgement of the first frame}.
"""

import argparse
import base64
import json
import sys
import threading

import socketio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--frame", required=True, help="a JPEG file")
    parser.add_argument("--transport", choices=["default", "websocket"], default="default")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    with open(args.frame, "rb") as file:
        url = "data:image/jpeg;base64," + base64.b64encode(file.read()).decode()
    processed, updates, errors = [], [], []
    done = threading.Event()
    client = socketio.Client(reconnection=False)

    @client.on("emotion_processed")
    def on_processed(data):
        processed.append(data)

    @client.on("emotion_update")
    def on_update(data):
        updates.append(data)
        if len(updates) >= 2 and errors:
            done.set()

    @client.on("emotion_error")
    def on_error(data):
        errors.append(data)
        if len(updates) >= 2:
            done.set()

    transports = ["websocket"] if args.transport == "websocket" else ["polling", "websocket"]
    client.connect(args.url, transports=transports, wait_timeout=args.timeout)
    ack = client.call("video_frame", {"frame": url, "timestamp": 1700000000123}, timeout=args.timeout)
    client.emit("video_frame", "data:image/gif;base64,R0lGODlh")  # not a JPEG or PNG: emotion_error
    client.emit("video_frame", url)  # the bare data URL form
    done.wait(args.timeout)
    used = client.transport()
    client.disconnect()
    print(json.dumps({"transport": used, "processed": processed, "updates": updates, "errors": errors, "ack": ack}))
    return 0 if done.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
