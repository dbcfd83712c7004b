#!/usr/bin/env python3
"""A Crypto Capital WebSocket API client written from the seed document (v1, Nov 2014), run
against `cashgrid serve`: two users authenticate with Bitcoin keys, register, receive a bank
deposit, transfer to each other and to an IBAN, and replay their history.

Signatures are made and checked with coincurve (libsecp256k1) and addresses computed here, from
the published scheme, with nothing of cashgrid's. The operator's side (deposit, KYC, the bank's
answer on a payout) is cashgrid's CLI, run on the server's data directory.

    python3 scripts/ccc_client.py --url ws://127.0.0.1:8080/ccc/v1 --cashgrid ./target/release/cashgrid \
        [--data-dir ./data | --database-url URL] [--server-address 1...]

Prints what happens; exits 1 at the first answer that is not what the seed document says.
Needs: pip install coincurve websockets (scripts/check-ccc-client.sh pins versions).
"""

import argparse
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys

import coincurve
from websockets.sync.client import connect

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PAYEE_IBAN = "DE89370400440532013000"
BANK_IBAN = "DE44500105175407324931"


def fail(text):
    print(f"ccc-client: FAILED: {text}", file=sys.stderr)
    sys.exit(1)


def check(condition, text):
    if not condition:
        fail(text)


def base58check(payload):
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = ALPHABET[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def ripemd160(data):
    return hashlib.new("ripemd160", data).digest()


def address_of(public_key_bytes):
    return base58check(b"\0" + ripemd160(hashlib.sha256(public_key_bytes).digest()))


def compact_size(n):
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def magic_hash(message):
    data = message.encode()
    preimage = b"\x18Bitcoin Signed Message:\n" + compact_size(len(data)) + data
    return hashlib.sha256(hashlib.sha256(preimage).digest()).digest()


def sign(key, message):
    """65-byte compact signature, compressed-key header (31 + recid), base64."""
    signature = key.sign_recoverable(magic_hash(message), hasher=None)  # r ‖ s ‖ recid
    return base64.b64encode(bytes([31 + signature[64]]) + signature[:64]).decode()


def signer_of(data_text, signed):
    """The address whose key made `signed` over `data_text`."""
    raw = base64.b64decode(signed)
    check(len(raw) == 65 and 27 <= raw[0] <= 34, f"a compact signature: {signed}")
    recid, compressed = (raw[0] - 27) & 3, raw[0] >= 31
    key = coincurve.PublicKey.from_signature_and_message(raw[1:] + bytes([recid]), magic_hash(data_text), hasher=None)
    return address_of(key.format(compressed=compressed))


def data_text(frame):
    """The exact text of a message's `data` (what `signed` signs): JSON.stringify of the parsed
    object, as the seed document's clients compute it."""
    return json.dumps(json.loads(frame)["data"], separators=(",", ":"), ensure_ascii=False)


class User:
    def __init__(self, name, url, server_address, sockets):
        self.name = name
        self.key = coincurve.PrivateKey()
        self.address = address_of(self.key.public_key.format(compressed=True))
        self.server_address = server_address
        self.socket = sockets.enter_context(connect(url, open_timeout=10, close_timeout=2))
        self.unsolicited = []
        self.nonce = 0
        challenge = self.receive()
        check(challenge["msg"] == "challenge" and len(challenge["data"]) >= 16, f"a challenge: {challenge}")
        self.challenge = challenge["data"]

    def receive(self, timeout=20):
        frame = self.socket.recv(timeout=timeout)
        message = json.loads(frame)
        if "signed" in message:
            signer = signer_of(data_text(frame), message["signed"])
            if self.server_address is None:
                self.server_address = signer
            check(signer == self.server_address, f"signed by the server ({signer}): {frame}")
        return message

    def send(self, op, params):
        self.nonce += 1
        self.socket.send(json.dumps({"op": op, "nonce": self.nonce, "params": params}))
        return self.nonce

    def sort(self, message, nonce):
        """Whether `message` answers the op of `nonce`; unsolicited ones are kept for later."""
        if message.get("nonce") == nonce:
            return True
        check("nonce" not in message, f"a reply to another op: {message}")
        self.unsolicited.append(message)
        return False

    def one(self, op, **params):
        """Send an op with a fresh nonce and return its one reply."""
        nonce = self.send(op, params)
        while True:
            message = self.receive()
            if self.sort(message, nonce):
                return message

    def history(self, **params):
        """The `transfer` messages a history op replays (all with its nonce); the replay has no
        end marker, so it ends when nothing more comes for a second."""
        nonce = self.send("history", params)
        replays = []
        while True:
            try:
                message = self.receive(timeout=1)
            except TimeoutError:
                return replays
            if self.sort(message, nonce):
                replays.append(message)

    def told(self, msg):
        """The next unsolicited message of this type (no nonce)."""
        while True:
            message = self.unsolicited.pop(0) if self.unsolicited else self.receive()
            check("nonce" not in message, f"unsolicited messages carry no nonce: {message}")
            if message["msg"] == msg:
                return message


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--cashgrid", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--database-url")
    parser.add_argument("--server-address", help="the address the server prints at start")
    args = parser.parse_args()
    store = (["--data-dir", args.data_dir] if args.data_dir else []) + (
        ["--database-url", args.database_url] if args.database_url else []
    )

    def operator(*command):
        run = subprocess.run([args.cashgrid, "ccc", *command, *store], capture_output=True, text=True, timeout=60)
        check(run.returncode == 0, f"cashgrid ccc {' '.join(command)}: {run.stderr}")
        return json.loads(run.stdout)

    with contextlib.ExitStack() as sockets:
        run(args, operator, sockets)


def run(args, operator, sockets):
    alice = User("Alice", args.url, args.server_address, sockets)
    bob = User("Bob", args.url, alice.server_address, sockets)
    for user in (alice, bob):
        answer = user.one("auth", key=user.address, signature=sign(user.key, user.challenge))
        check(answer == {"msg": "auth", "nonce": user.nonce, "data": "User Authenticated"}, f"auth: {answer}")
        info = user.one("register", name=user.name, email=f"{user.name.lower()}@example.com", country="PA",
                        currency="USD")
        check(info["msg"] == "register" and info["data"]["isRegistered"], f"register: {info}")
        print(f"ccc-client: {user.name} is {user.address}, registered")

    booked = operator("deposit", "--address", alice.address, "--currency", "USD", "--amount", "100.00",
                      "--from-iban", BANK_IBAN, "--reference", f"demo-{os.getpid()}")
    deposit = alice.told("transfer")
    check(deposit["data"]["sender"] == BANK_IBAN and deposit["data"]["amount"] == "100.00", f"deposit: {deposit}")
    check(deposit["data"]["txid"] == booked["txid"], "the deposit's txid")
    print(f"ccc-client: Alice received {deposit['data']['amount']} {deposit['data']['currency']} from {BANK_IBAN}")

    sent = alice.one("transfer", recipient=bob.address, currency="USD", amount="25.00")
    check(sent["msg"] == "transfer" and sent["data"]["destination"] == bob.address, f"transfer: {sent}")
    received = bob.told("transfer")
    check(received["data"] == sent["data"], f"Bob is told the same transfer: {received}")
    print(f"ccc-client: Alice sent 25.00 USD to Bob, who was told at once")

    refused = alice.one("transfer", recipient=PAYEE_IBAN, currency="USD", amount="10")
    check(refused["msg"] == "error", f"an unverified user may not pay out: {refused}")
    operator("verify", "--address", alice.address)
    payout = alice.one("transfer", destination=PAYEE_IBAN, currency="USD", amount=10)
    check(payout["data"]["status"] == "pending", f"a payout is pending at once: {payout}")
    operator("settle", "--transfer", payout["data"]["txid"], "--outcome", "complete")
    complete = alice.told("transfer")
    check(complete["data"]["status"] == "complete" and complete["data"]["txid"] == payout["data"]["txid"],
          f"the payout completes: {complete}")
    print(f"ccc-client: Alice paid 10.00 USD out to {PAYEE_IBAN}: pending, then complete")

    balance = alice.one("balance")
    check(balance["data"] == {"USD": "65.00"}, f"Alice's balance: {balance}")
    history = alice.history()
    live = [deposit, sent, payout, complete]
    check([step["data"] for step in history] == [message["data"] for message in live],
          f"history replays exactly what came live: {history}")
    print(f"ccc-client: history replayed {len(history)} transfers exactly as they came live; balance 65.00 USD")
    print(f"ccc-client: every ledger message was signed by {alice.server_address}")


if __name__ == "__main__":
    main()
