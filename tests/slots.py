"""Redis Cluster's key slot (CRC16/XMODEM with hash tags), for choosing
keys that land on different shards."""


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % 16384


def keys_on_distinct_shards(shards, prefix="k"):
    """One key per shard, for a server with `shards` shards."""
    found = {}
    i = 0
    while len(found) < shards:
        k = f"{prefix}{i}".encode()
        found.setdefault(key_slot(k) % shards, k.decode())
        i += 1
    return [found[s] for s in range(shards)]
