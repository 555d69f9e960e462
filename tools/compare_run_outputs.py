#!/usr/bin/env python3
"""Compare the outputs of two detbench builds for the same runs, apart from timings.

Each side is a folder holding run output folders (each with results.json, results.md,
results.csv and, optionally, saved detections *.json) and a results store (*.db). Run the same
commands with both binaries, from folders of the same layout, then:

    tools/compare_run_outputs.py BEFORE_DIR AFTER_DIR

What differs between two runs of the same command by nature is masked, nothing else:
- timings: every latency number and raw sample (counts of samples are kept), the harness's
  decode wait, evaluation time, ground-truth load time and other processes' CPU share;
- the validity verdict and notes (they depend on the machine's load: "other processes used
  61% of the CPU"), in results.json, results.md, results.csv and the store;
- when and by what it ran: started_at, recorded_at, captured_at, detbench's version (git
  describe of each build), argv[0], and row ids are compared as they are (same insertion order).

JSON is compared with its key order (the files' text layout), Markdown line by line, CSV cell by
cell, the store table by table (schema SQL, user_version and application_id included).
Exits 1 and prints every difference when there is one.
"""

import json
import re
import sqlite3
import sys
from pathlib import Path

MASK = "<masked>"
HARNESS_TIMINGS = {
    "decode_wait_seconds",
    "evaluation_seconds_after_pass",
    "ground_truth_load_seconds",
    "other_processes_cpu_share",
}
LATENCY_KEEP = {
    "percentile_definition",
    "warmup_iterations",
    "batch_size",
    "timed_images",
    "includes_decode",
}


def ordered(text):
    """JSON with the key order of its text (a list of pairs for every object)."""
    return json.loads(text, object_pairs_hook=lambda pairs: ("object", pairs))


def mask_summary(summary):
    if summary is None:
        return None
    return ("object", [(k, MASK if k != "count" else v) for k, v in summary[1]])


def mask_latency(latency):
    if latency is None:
        return None
    out = []
    for key, value in latency[1]:
        if key in LATENCY_KEEP:
            out.append((key, value))
        elif key == "end_to_end":
            out.append((key, mask_summary(value)))
        elif key == "stages":
            stages = []
            for stage in value:
                fields = dict(stage[1])
                stages.append(
                    (
                        "object",
                        [
                            ("stage", fields["stage"]),
                            ("summary", mask_summary(fields["summary"])),
                            ("samples_ms", len(fields["samples_ms"])),
                        ],
                    )
                )
            out.append((key, stages))
        elif key == "end_to_end_samples_ms":
            out.append((key, len(value)))
        else:  # total_seconds, images_per_second, valid, validity_notes
            out.append((key, MASK))
    return ("object", out)


def mask_provenance(provenance):
    if not isinstance(provenance, tuple):
        return provenance
    out = []
    for key, value in provenance[1]:
        if key == "harness" and isinstance(value, tuple):
            value = ("object", [(k, MASK if k in HARNESS_TIMINGS else v) for k, v in value[1]])
        out.append((key, value))
    return ("object", out)


def mask_model(model):
    out = []
    for key, value in model[1]:
        if key == "latency":
            value = mask_latency(value)
        elif key == "provenance":
            value = mask_provenance(value)
        out.append((key, value))
    return ("object", out)


def mask_environment(env):
    if not isinstance(env, tuple):
        return env
    out = []
    for key, value in env[1]:
        if key == "captured_at":
            value = MASK
        elif key == "build":
            value = ("object", [(k, MASK if k == "detbench_version" else v) for k, v in value[1]])
        out.append((key, value))
    return ("object", out)


def mask_results_json(doc):
    out = []
    for key, value in doc[1]:
        if key in ("started_at", "detbench_version"):
            value = MASK
        elif key == "command_line":
            value = [MASK] + value[1:]
        elif key == "environment":
            value = mask_environment(value)
        elif key == "models":
            value = [mask_model(m) for m in value]
        out.append((key, value))
    return ("object", out)


def mask_markdown(text):
    """results.md without its timings: the main table's last six cells, every cell of the
    per-stage table but the model, and the timing notes."""
    out = []
    section = "head"
    for line in text.splitlines():
        if line.startswith("## "):
            section = line
        if line.startswith(("- started:", "- detbench:", "- command:")):
            line = line.split(":", 1)[0] + ": " + MASK
        elif "timing flagged:" in line:
            continue
        elif line.startswith("| ") and not line.startswith("| Model"):
            cells = line.split(" | ")
            if section == "head":
                cells = cells[:-6] + [MASK] * 5 + [MASK + " |"]
            elif section.startswith("## Latency per stage"):
                cells = cells[:1] + [MASK] * (len(cells) - 2) + [MASK + " |"]
            line = " | ".join(cells)
        out.append(line)
    return out


CSV_TIMING = re.compile(r"^(images_per_second|total_s|e2e_.*|.*_mean_ms|timing_valid)$")


def mask_csv(text):
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    masked = [i for i, name in enumerate(header) if CSV_TIMING.match(name)]
    out = [header]
    for row in rows[1:]:
        out.append([MASK if i in masked and cell != "" else cell for i, cell in enumerate(row)])
    return out, text.endswith("\n")


def mask_store_row(table, row):
    row = dict(row)
    if table == "runs":
        for key in ("started_at", "recorded_at", "detbench_version"):
            row[key] = MASK
        if row["command_line"] not in (None, "null"):
            command = json.loads(row["command_line"])
            row["command_line"] = json.dumps([MASK] + command[1:])
        if row["environment"] not in (None, "null"):
            row["environment"] = mask_environment(ordered(row["environment"]))
    elif table == "results":
        if row["provenance"] is not None:
            row["provenance"] = mask_provenance(ordered(row["provenance"]))
        if row["result_json"] not in (None, "{}"):
            row["result_json"] = mask_model(ordered(row["result_json"]))
    elif table == "latency":
        for key in ("total_seconds", "images_per_second", "valid", "validity_notes"):
            row[key] = MASK
    elif table == "latency_stages":
        for key in ("mean", "median", "min", "max", "std", "p90", "p95", "p99"):
            row[key] = MASK
        row["samples_ms"] = len(row["samples_ms"])
    elif table == "sources":
        row["imported_at"] = MASK
    return row


def dump_store(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    dump = {
        "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
        "application_id": conn.execute("PRAGMA application_id").fetchone()[0],
        "schema": [
            tuple(r)
            for r in conn.execute(
                "SELECT type, name, sql FROM sqlite_schema ORDER BY type, name"
            )
        ],
    }
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
    for table in sorted(tables):
        try:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        except sqlite3.OperationalError:  # a WITHOUT ROWID table: its primary key's order
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        dump[table] = [mask_store_row(table, r) for r in rows]
    conn.close()
    return dump


def first_difference(before, after, path=""):
    """The path of the first difference inside two masked values, and the two values there."""
    if isinstance(before, tuple) and isinstance(after, tuple) and before[0] == "object":
        b_keys, a_keys = [k for k, _ in before[1]], [k for k, _ in after[1]]
        if b_keys != a_keys:
            return f"{path} (keys)", b_keys, a_keys
        for (key, b), (_, a) in zip(before[1], after[1]):
            if b != a:
                return first_difference(b, a, f"{path}.{key}")
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
        if len(before) != len(after):
            return f"{path} (length)", len(before), len(after)
        for i, (b, a) in enumerate(zip(before, after)):
            if b != a:
                return first_difference(b, a, f"{path}[{i}]")
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if before[key] != after.get(key):
                return first_difference(before[key], after.get(key), f"{path}.{key}")
    return path, before, after


def compare(label, before, after, problems):
    if before != after:
        where, b, a = first_difference(before, after)
        problems.append(f"{label}{where}:\n  before: {b}\n  after:  {a}")


def compare_lists(label, before, after, problems):
    if len(before) != len(after):
        problems.append(f"{label}: {len(before)} items before, {len(after)} after")
    for i, (b, a) in enumerate(zip(before, after)):
        compare(f"{label}[{i}]", b, a, problems)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    problems = []
    compared = {"json": 0, "md": 0, "csv": 0, "detections": 0, "stores": 0}
    for b in sorted(before.rglob("*")):
        rel = b.relative_to(before)
        a = after / rel
        if not b.is_file() or b.name in ("detbench", "detbench-torch"):
            continue
        if b.suffix == ".db-wal" or b.suffix == ".db-shm":
            continue
        if not a.is_file():
            if b.suffix in (".json", ".md", ".csv", ".db"):
                problems.append(f"{rel}: missing after")
            continue
        if b.name == "results.json":
            compare(
                str(rel),
                mask_results_json(ordered(b.read_text())),
                mask_results_json(ordered(a.read_text())),
                problems,
            )
            compared["json"] += 1
        elif b.name == "results.md":
            compare_lists(str(rel), mask_markdown(b.read_text()), mask_markdown(a.read_text()), problems)
            compared["md"] += 1
        elif b.name == "results.csv":
            compare(str(rel), mask_csv(b.read_text()), mask_csv(a.read_text()), problems)
            compared["csv"] += 1
        elif b.suffix == ".json":
            compare(str(rel), b.read_bytes(), a.read_bytes(), problems)
            compared["detections"] += 1
        elif b.suffix == ".db":
            db_before, db_after = dump_store(b), dump_store(a)
            for table in sorted(set(db_before) | set(db_after)):
                b_rows, a_rows = db_before.get(table), db_after.get(table)
                if isinstance(b_rows, list) and isinstance(a_rows, list):
                    compare_lists(f"{rel} {table}", b_rows, a_rows, problems)
                else:
                    compare(f"{rel} {table}", b_rows, a_rows, problems)
            compared["stores"] += 1
    print(
        f"compared {compared['json']} results.json, {compared['md']} results.md, "
        f"{compared['csv']} results.csv, {compared['detections']} detection files, "
        f"{compared['stores']} stores"
    )
    if problems:
        print(f"{len(problems)} difference(s):")
        for p in problems:
            print(p)
        sys.exit(1)
    print("identical apart from timings, timestamps and versions")


if __name__ == "__main__":
    main()
