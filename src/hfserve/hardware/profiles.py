"""Measured performance per model and device, kept in SQLite under the cache directory.
Selection reads it to prefer the device that was fastest for that model."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS profile (
    model TEXT NOT NULL,
    device TEXT NOT NULL,
    backend TEXT NOT NULL,
    throughput REAL NOT NULL,
    unit TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    peak_bytes INTEGER,
    measured_at REAL NOT NULL,
    PRIMARY KEY (model, device)
)
"""


@dataclass(frozen=True)
class Measurement:
    model: str
    device: str
    backend: str
    throughput: float          # items/s for encoders, tokens/s for generation
    unit: str
    latency_ms: float          # median per batch (encoders) or per token (generation)
    peak_bytes: int | None
    measured_at: float = 0.0


class ProfileStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.execute(SCHEMA)
        return conn

    def record(self, m: Measurement) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO profile VALUES (?,?,?,?,?,?,?,?)",
                         (m.model, m.device, m.backend, m.throughput, m.unit, m.latency_ms,
                          m.peak_bytes, m.measured_at or time.time()))

    def measurements(self, model: str) -> list[Measurement]:
        if not self.path.is_file():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM profile WHERE model = ? ORDER BY throughput DESC",
                                (model,)).fetchall()
        return [Measurement(*row) for row in rows]

    def scores(self, model: str) -> dict[str, float]:
        """Device id -> measured throughput, the shape ``plan(profile=...)`` takes."""
        return {m.device: m.throughput for m in self.measurements(model)}
