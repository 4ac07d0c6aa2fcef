#!/usr/bin/env python3
"""Paho Python 2.x client for the mqtt-sync benchmark (callback API VERSION2).

Same command line as the other clients: paho_bench.py <pub|sub|rtt|idle> key=value...
window=0 keeps Paho's default in-flight window (20).
"""
import resource
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt

A = dict(host="127.0.0.1", port="1883", n="1000", qos="0", size="64", window="0",
         topic="bench/t", nodelay="1", secs="30", id="paho-bench")
for kv in sys.argv[2:]:
    if "=" in kv:
        k, v = kv.split("=", 1)
        A[k] = v
host, port, n, qos = A["host"], int(A["port"]), int(A["n"]), int(A["qos"])
size, window, topic, secs = int(A["size"]), int(A["window"]), A["topic"], int(A["secs"])

cv = threading.Condition()
st = dict(connected=False, subscribed=False, pcount=0, count=0, end=None, last=None, gap=0.0,
          last_ns=0, msg_t=None)


def on_connect(c, u, flags, rc, props):
    with cv:
        st["connected"] = not rc.is_failure
        cv.notify_all()


def on_subscribe(c, u, mid, rcs, props):
    with cv:
        st["subscribed"] = True
        cv.notify_all()


def on_publish(c, u, mid, rc, props):
    now = time.monotonic()
    if st["last"] is not None:
        st["gap"] = max(st["gap"], now - st["last"])
    st["last"] = now
    st["pcount"] += 1
    if st["pcount"] == n:
        with cv:
            st["end"] = now
            cv.notify_all()


def on_message(c, u, msg):
    with cv:
        st["count"] += 1
        st["last_ns"] = time.time_ns()
        st["msg_t"] = time.monotonic()
        cv.notify_all()


def wait(cond, timeout):
    """Wait until cond() or `timeout` seconds without progress."""
    with cv:
        seen = st["count"] + st["pcount"]
        since = time.monotonic()
        while not cond():
            cv.wait(0.05)
            now_seen = st["count"] + st["pcount"]
            if now_seen != seen:
                seen, since = now_seen, time.monotonic()
            if time.monotonic() - since > timeout:
                break


def start():
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=A["id"])
    if window > 0:
        c.max_inflight_messages_set(window)
    c.on_connect, c.on_subscribe, c.on_publish, c.on_message = on_connect, on_subscribe, on_publish, on_message
    c.connect(host, port, 60)
    # Paho leaves Nagle on; every client in the benchmark runs with TCP_NODELAY (nodelay=1).
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(A["nodelay"]))
    c.loop_start()
    wait(lambda: st["connected"], 10)
    if not st["connected"]:
        sys.exit("no CONNACK")
    return c


def stop(c):
    c.disconnect()
    c.loop_stop()


def main():
    w = sys.argv[1]
    payload = b"\x5a" * size
    if w == "version":
        print(mqtt.__version__ if hasattr(mqtt, "__version__") else __import__("paho.mqtt").mqtt.__version__)
        return
    if w == "pub":
        c = start()
        t0_ns, t0 = time.time_ns(), time.monotonic()
        for _ in range(n):
            c.publish(topic, payload, qos)
        wait(lambda: st["pcount"] >= n, 10)
        e = (st["end"] if st["pcount"] >= n else time.monotonic()) - t0
        print(f"RESULT n={st['pcount']} secs={e} t0_ns={t0_ns} max_gap_ms={st['gap'] * 1e3}", flush=True)
        stop(c)
    elif w == "sub":
        c = start()
        c.subscribe(topic, qos)
        wait(lambda: st["subscribed"], 10)
        print("READY", flush=True)
        wait(lambda: st["count"] >= n, 10)
        print(f"RESULT n={st['count']} t_last_ns={st['last_ns']}", flush=True)
        stop(c)
    elif w == "rtt":
        c = start()
        c.subscribe(topic, qos)
        wait(lambda: st["subscribed"], 10)
        lat = []
        warm = 50
        for i in range(n + warm):
            t = time.monotonic()
            target = i + 1
            c.publish(topic, payload, qos)
            wait(lambda: st["count"] >= target, 5)
            if st["count"] < target:
                sys.exit(f"message {i} not received")
            if i >= warm:
                lat.append((st["msg_t"] - t) * 1e6)
        lat.sort()
        k = len(lat)
        print(f"RESULT n={k} p50_us={lat[round((k - 1) * 0.5)]} p99_us={lat[round((k - 1) * 0.99)]} "
              f"max_us={lat[-1]}", flush=True)
        stop(c)
    elif w == "idle":
        c = start()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(secs)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3
        print(f"RESULT n=1 idle_cpu_ms={cpu}", flush=True)
        stop(c)
    else:
        sys.exit(f"unknown workload {w}")


if __name__ == "__main__":
    main()
