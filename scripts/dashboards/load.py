#!/usr/bin/env python3
"""Bounded load for scripts/check-dashboards.sh: makes every dashboard panel have data.

Standard library only (no pip install): http.client for HTTP, a pure-Python RSA key and
PKCS#1 v1.5 decryption for the phone's secure codes, sqlite3 to provoke store faults.

Phases, all inside --duration seconds and run side by side:
  * workers (--workers threads) against node A: the dncash cash-out flow and its mistakes —
    create/claim/confirm, partial and cancelled cash-outs, double claims (not_open), wrong codes
    (invalid_code -> REJECTED), unknown devices/tokens, bad radiocodes, confirms by another
    device, bank reads, updates and deletes, an unmatched path and /health;
  * fence (needs --node-b, a second server on the same data directory): bank updates of the
    same tokens alternate between the two nodes, so each node's token actor holds a stale
    version and its fenced write conflicts (cashgrid_store_fence_conflicts_total);
  * fault (needs --sqlite): holds SQLite's write lock for longer than two busy timeouts while
    requests queue on a few tokens: failed commits (result="error"), actor restarts, 503s
    (cashgrid_http_server_errors_total) and, with a short send_timeout_ms, overload rejections.

check-dashboards.sh runs it beside goose (load-tests/, which carries the volume) with one
worker, or alone with six workers under CHECK_DASHBOARDS_LOAD=python (see grafana/README.md).
"""

import argparse
import base64
import http.client
import json
import random
import secrets
import sqlite3
import sys
import threading
import time
import uuid

# --- RSA (the phone's key) --------------------------------------------------------------


def _probably_prime(n, rounds=24):
    if n < 4:
        return n in (2, 3)
    for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = random.randrange(2, n - 2)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits):
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if _probably_prime(candidate):
            return candidate


def _der_len(length):
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_int(value):
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # room for a sign bit
    return b"\x02" + _der_len(len(raw)) + raw


class PhoneKey:
    """An RSA key pair: the public half as PKCS#1 PEM, decryption with CRT."""

    def __init__(self, bits=1024, e=65537):
        while True:
            p, q = _prime(bits // 2), _prime(bits // 2)
            phi = (p - 1) * (q - 1)
            if p != q and phi % e != 0:
                break
        self.n, self.e = p * q, e
        self.d = pow(e, -1, phi)
        self.p, self.q = p, q
        self.dp, self.dq, self.qinv = self.d % (p - 1), self.d % (q - 1), pow(q, -1, p)
        self.size = (self.n.bit_length() + 7) // 8

    def public_pem(self):
        body = _der_int(self.n) + _der_int(self.e)
        der = b"\x30" + _der_len(len(body)) + body
        b64 = base64.b64encode(der).decode()
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        return "-----BEGIN RSA PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END RSA PUBLIC KEY-----\n"

    def decrypt(self, ciphertext):
        c = int.from_bytes(ciphertext, "big")
        m1, m2 = pow(c, self.dp, self.p), pow(c, self.dq, self.q)
        m = m2 + self.q * ((self.qinv * (m1 - m2)) % self.p)
        block = m.to_bytes(self.size, "big")
        if block[0:2] != b"\x00\x02":
            raise ValueError("not a PKCS#1 v1.5 encryption block")
        return block[block.index(b"\x00", 2) + 1:]


# --- HTTP -------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, what, status):
        key = (what, status)
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1


STATS = Stats()


class Client:
    """One keep-alive connection to one node."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout = port, timeout
        self.conn = None

    def request(self, what, method, path, headers=None, body=None):
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(headers or {})
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                STATS.add(what, response.status)
                try:
                    parsed = json.loads(data) if data else None
                except ValueError:
                    parsed = None
                return response.status, parsed
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    STATS.add(what, "io-error")
                    return None, None
        return None, None


class Bank:
    """The credentials and the devices every scenario shares."""

    def __init__(self, creds, phones, atms, key):
        self.token_headers = {"DN-API-KEY": creds["token"]["apikey"], "DN-API-SECRET": creds["token"]["apisecret"]}
        self.cash_headers = {"DN-API-KEY": creds["cash"]["apikey"], "DN-API-SECRET": creds["cash"]["apisecret"]}
        self.phones, self.atms, self.key = phones, atms, key


def register_devices(client, creds, key, phones=4, atms=4):
    bank = Bank(creds, [], [], key)
    pem = key.public_pem()
    for i in range(phones):
        status, body = client.request("register phone", "POST", "/dnapi/token/v1/devices", bank.token_headers,
                                      {"pubkey": pem, "refname": f"phone-{i}"})
        if status != 200 or not body or "uuid" not in body:
            sys.exit(f"load: phone registration answered {status} {body}")
        bank.phones.append(body["uuid"])
    for i in range(atms):
        status, body = client.request("register atm", "POST", "/dnapi/cash/v1/devices", bank.cash_headers,
                                      {"refname": f"atm-{i}"})
        if status != 200 or not body or "uuid" not in body:
            sys.exit(f"load: ATM registration answered {status} {body}")
        bank.atms.append(body["uuid"])
    return bank


# --- scenarios --------------------------------------------------------------------------


def issue(client, bank, amount=None, phone=None):
    """A new OPEN token: (uuid, radiocode, phone) or None."""
    phone = phone or random.choice(bank.phones)
    amount = amount or random.choice([2000, 5000, 10000, 20000])
    symbol = random.choice(["EUR", "EUR", "EUR", "USD"])
    status, body = client.request("create token", "POST", "/dnapi/token/v1/tokens", bank.token_headers,
                                  {"device_uuid": phone, "amount": amount, "symbol": symbol,
                                   "refname": f"booking-{uuid.uuid4().hex[:8]}"})
    if status != 200 or not body or "secure_code" not in body:
        return None
    code = bank.key.decrypt(base64.b64decode(body["secure_code"]))
    return body["uuid"], body["uuid"] + code.hex(), phone


def claim(client, bank, radiocode, atm, what="claim"):
    return client.request(what, "GET", f"/dnapi/cash/v1/tokens/{radiocode}?device_uuid={atm}", bank.cash_headers)


def confirm(client, bank, token, atm, state="COMPLETED", amount=None, what="confirm"):
    body = {"state": state, "lockrefname": f"{atm[:8]}-tx-{uuid.uuid4().hex[:6]}"}
    if amount is not None:
        body["amount"] = amount
    return client.request(what, "PUT", f"/dnapi/cash/v1/tokens/{token}?device_uuid={atm}", bank.cash_headers, body)


def scenario_cashout(client, bank):
    issued = issue(client, bank)
    if not issued:
        return
    token, code, _ = issued
    atm = random.choice(bank.atms)
    if claim(client, bank, code, atm)[0] == 200:
        confirm(client, bank, token, atm)


def scenario_partial_cashout(client, bank):
    issued = issue(client, bank, amount=10000)
    if not issued:
        return
    token, code, _ = issued
    atm = random.choice(bank.atms)
    if claim(client, bank, code, atm)[0] == 200:
        confirm(client, bank, token, atm, amount=random.choice([2000, 5000, 7500]))


def scenario_double_claim(client, bank):
    issued = issue(client, bank)
    if not issued:
        return
    token, code, _ = issued
    atm, other = random.sample(bank.atms, 2)
    if claim(client, bank, code, atm)[0] == 200:
        claim(client, bank, code, other, what="double claim")                 # not_open
        confirm(client, bank, token, other, what="confirm by another ATM")    # locked_by_another_device
        confirm(client, bank, token, atm, state=random.choice(["CANCELED", "FAILED"]))


def scenario_wrong_code(client, bank):
    issued = issue(client, bank)
    if not issued:
        return
    token, code, _ = issued
    atm = random.choice(bank.atms)
    wrong = code[:-2] + ("00" if code[-2:] != "00" else "11")
    claim(client, bank, wrong, atm, what="wrong-code claim")                  # invalid_code, REJECTED
    claim(client, bank, code, atm, what="claim after rejection")              # not_open
    confirm(client, bank, token, atm, what="confirm unlocked")                # not_locked


def scenario_bank(client, bank):
    issued = issue(client, bank)
    if not issued:
        return
    token, _, phone = issued
    client.request("get token", "GET", f"/dnapi/token/v1/tokens/{token}", bank.token_headers)
    client.request("update token", "PUT", f"/dnapi/token/v1/tokens/{token}", bank.token_headers,
                   {"info": {"note": uuid.uuid4().hex[:8]}})
    client.request("delete token", "DELETE", f"/dnapi/token/v1/tokens/{token}?device_uuid={phone}", bank.token_headers)
    client.request("list tokens", "GET", "/dnapi/token/v1/tokens?limit=20", bank.token_headers)
    client.request("list devices", "GET", "/dnapi/token/v1/devices", bank.token_headers)
    client.request("get device", "GET", f"/dnapi/token/v1/devices/{phone}", bank.token_headers)


def scenario_mistakes(client, bank):
    atm = random.choice(bank.atms)
    claim(client, bank, str(uuid.uuid4()) + secrets.token_hex(6), atm, what="claim unknown token")
    claim(client, bank, "not-a-radiocode", atm, what="claim bad radiocode")
    issued = issue(client, bank)
    if issued:
        claim(client, bank, issued[1], str(uuid.uuid4()), what="claim unknown ATM")
    client.request("unmatched", "GET", "/dnapi/cash/v2/nothing-here", bank.cash_headers)
    client.request("unmatched", "GET", "/no/such/path")
    client.request("health", "GET", "/health")


SCENARIOS = [
    (scenario_cashout, 6),
    (scenario_partial_cashout, 2),
    (scenario_double_claim, 2),
    (scenario_wrong_code, 2),
    (scenario_bank, 1),
    (scenario_mistakes, 1),
]


def worker(port, bank, deadline, seed):
    rng_state = random.Random(seed)
    client = Client(port)
    functions = [f for f, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    # Every scenario once first, so a short run still covers every path.
    order = list(functions)
    rng_state.shuffle(order)
    for scenario in order:
        if time.monotonic() >= deadline:
            return
        scenario(client, bank)
    while time.monotonic() < deadline:
        rng_state.choices(functions, weights)[0](client, bank)


# --- fence conflicts: two nodes, one database ---------------------------------------------


def fence(port_a, port_b, bank, start_at, rounds, tokens=4):
    time.sleep(max(0.0, start_at - time.monotonic()))
    a, b = Client(port_a), Client(port_b)
    issued = [t for t in (issue(a, bank) for _ in range(tokens)) if t]
    for i in range(rounds):
        for token, _, _ in issued:
            node = a if i % 2 == 0 else b
            node.request("fenced update", "PUT", f"/dnapi/token/v1/tokens/{token}", bank.token_headers,
                         {"info": {"round": i}})


# --- store fault: SQLite's write lock held past the busy timeout --------------------------


def fault(port, bank, sqlite_path, start_at, hold, stop_flag):
    time.sleep(max(0.0, start_at - time.monotonic()))
    setup = Client(port)
    issued = [t for t in (issue(setup, bank) for _ in range(3)) if t]
    conn = sqlite3.connect(sqlite_path, timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print(f"load: fault: holding the SQLite write lock for {hold:.0f}s", file=sys.stderr)
    threads = []
    try:
        # Writes that reach the writer while the lock is held: their commits fail
        # (result="error"), their token actors restart; the queued ones overrun their senders'
        # deadlines (overload kind "mailbox" and "token").
        for token, _, _ in issued:
            for i in range(4):
                c = Client(port)
                t = threading.Thread(target=c.request, daemon=True,
                                     args=("update during fault", "PUT", f"/dnapi/token/v1/tokens/{token}",
                                           bank.token_headers, {"info": {"fault": i}}))
                t.start()
                threads.append(t)
                time.sleep(0.05)
        end = time.monotonic() + hold
        while time.monotonic() < end and not stop_flag.is_set():
            time.sleep(0.1)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
        print("load: fault: lock released", file=sys.stderr)
    for t in threads:
        t.join(timeout=30)


ERRORS = []


def guarded(function):
    """Run a phase; an exception fails the whole load instead of vanishing with its thread."""

    def run(*args):
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - reported and turned into the exit status
            ERRORS.append(f"{function.__name__}: {error!r}")
            print(f"load: {function.__name__} failed: {error!r}", file=sys.stderr)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="node A's port")
    parser.add_argument("--node-b", type=int, help="a second node on the same database (fence phase)")
    parser.add_argument("--creds", required=True, help="JSON file {token: {apikey, apisecret}, cash: {...}}")
    parser.add_argument("--sqlite", help="node A's SQLite file (fault phase)")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--fault-hold", type=float, default=11.0,
                        help="seconds the write lock is held: over two of the store's 5 s busy timeouts")
    args = parser.parse_args()

    with open(args.creds) as f:
        creds = json.load(f)
    key = PhoneKey()
    bank = register_devices(Client(args.port), creds, key)
    started = time.monotonic()
    deadline = started + args.duration
    stop_flag = threading.Event()
    threads = [threading.Thread(target=guarded(worker), args=(args.port, bank, deadline, i), daemon=True)
               for i in range(args.workers)]
    if args.node_b:
        # Inside the check's 30 s rate window, before the fault phase.
        threads.append(threading.Thread(target=guarded(fence), args=(args.port, args.node_b, bank,
                                                            started + min(8.0, args.duration / 4), 20),
                                        daemon=True))
    if args.sqlite:
        # Late enough that the check's rate windows still see it, early enough to end in time.
        start_at = started + max(2.0, args.duration - args.fault_hold - 6)
        threads.append(threading.Thread(target=guarded(fault),
                                        args=(args.port, bank, args.sqlite, start_at, args.fault_hold, stop_flag),
                                        daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()) + 40)
    stop_flag.set()
    hung = [t for t in threads if t.is_alive()]

    total = sum(STATS.counts.values())
    print(f"load: {total} requests in {time.monotonic() - started:.1f}s", file=sys.stderr)
    for (what, status), count in sorted(STATS.counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"load:   {what:<24} {status!s:>8} {count:>6}", file=sys.stderr)
    if ERRORS:
        sys.exit("load: " + "; ".join(ERRORS))
    if hung:
        sys.exit(f"load: {len(hung)} load threads did not finish")
    if total == 0:
        sys.exit("load: no request was answered")


if __name__ == "__main__":
    main()
