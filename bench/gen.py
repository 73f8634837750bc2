#!/usr/bin/env python3
"""Intake's benchmark data: a deterministic 'orders' file (Python 3 stdlib only).

Nine typed columns, every one required but notes:

  id          integer, 1..N in file order (the primary key)
  email       local@domain.tld, unique
  full_name   text; some with commas, double quotes, apostrophes, non-ASCII letters
  country     2-letter code
  amount      decimal with 2 places, >= 0 (NDJSON: a JSON number)
  quantity    integer
  active      true / false (NDJSON: a JSON boolean)
  created_at  RFC 3339 timestamp: Z or an offset, sometimes fractional seconds
  notes       optional text: often empty, sometimes with quotes, tabs, emoji, or several lines

A row's content depends only on --seed and its id, so files made with different options
differ only where the options say:

  --invalid-rate R   exactly round(N*R) rows get one defect each (a malformed amount, email,
                     date, quantity or boolean, a negative amount, a 3-letter country, or a
                     missing required value); the manifest <out>.invalid.tsv lists each one:
                     id, record, line (the physical line where the record starts; the CSV
                     header is line 1), kind, column, value.
  --changed F        the rows whose id is a multiple of round(1/F) get a different amount,
                     quantity and active flag (an upsert source: F=0.5 changes half the rows).

Chunks of rows are made by several processes and written in order.

    python3 bench/gen.py --rows 1000000 --out /tmp/orders.csv
    python3 bench/gen.py --rows 1000000 --invalid-rate 0.01 --out /tmp/orders_bad.csv
    python3 bench/gen.py --rows 1000000 --format ndjson --out /tmp/orders.ndjson
"""
import argparse
import json
import multiprocessing
import os
import random
import sys

CHUNK = 50_000

FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
         "William", "Elizabeth", "David", "Susan", "Joseph", "Sarah", "Thomas", "Karen",
         "José", "Zoë", "Łukasz", "Ægir", "Søren", "François", "Anaïs", "Jürgen", "Çağla",
         "Siobhán", "Renée", "Hiroshi", "Mei", "Aarav", "Fatima", "Олег", "Мария", "李",
         "Ngozi", "Ólafur", "Ana-María", "Jean-Luc", "Håkon", "Yuki"]
LAST = ["Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Wilson",
        "Müller", "Dvořák", "Nowak", "García Márquez", "O'Brien", "D'Angelo", "van der Berg",
        "Østergaard", "Ångström", "Nakamura", "Nguyễn", "Иванов", "张伟", "Okonkwo",
        "Ben-David", "MacDonald", "St. John", "Kowalczyk", "Schröder", "de la Cruz"]
LOCAL_FIRST = ["james", "mary", "john", "pat", "rob", "jen", "mike", "linda", "will", "liz",
               "dave", "sue", "joe", "sarah", "tom", "karen"]
LOCAL_LAST = ["smith", "jones", "brown", "garcia", "miller", "davis", "lopez", "wilson",
              "mueller", "nowak", "obrien", "kim", "tanaka", "nguyen", "ivanov", "okonkwo"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "shop.example.co.uk",
           "corp.example.de", "example.io", "post.example.fr", "example.jp"]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "PT", "IE", "CA", "MX",
             "BR", "AR", "JP", "CN", "IN", "AU", "NZ", "ZA", "NG", "EG", "TR", "KR", "SG",
             "CH", "AT", "BE", "DK", "NO", "FI"]
WORDS = ["deliver", "before", "noon", "gift", "wrap", "please", "fragile", "leave", "at",
         "door", "call", "on", "arrival", "no", "signature", "express", "invoice", "VAT",
         "refund", "café", "naïve", "façade", "größe", "crème brûlée", "東京", "🙂", "📦", "ok"]
PHRASES = ['Customer said "ASAP"', "ref #%d, see ticket", "Left at reception, 3rd floor",
           "Paid by card; receipt emailed", 'Size "L", colour: navy', "Use side door",
           "Discount 10%%, code SPRING", "Tab\tseparated\tbits", "semi;colon;list",
           "it's \"fine\", they said"]
OFFSETS = ["Z", "Z", "Z", "Z", "+00:00", "+01:00", "+02:00", "-05:00", "-08:00", "+05:30",
           "+09:00", "-03:00", "Z", "Z", "+10:00", "-07:00"]

DEFECTS = [
    # kind, column, CSV/NDJSON values (None: the value is missing)
    ("bad_amount", "amount", ["N/A", "12.3.4", "abc", "1,234.50", "$19.99", "ten", "--5.00"]),
    ("negative_amount", "amount", ["-5.00", "-0.01", "-120.50"]),
    ("bad_email", "email", ["{u}.example.com", "{u}@", "@example.com", "{u} x@example.com",
                            "{u}@@example.com", "{u}@example", "mailto {u}"]),
    ("bad_date", "created_at", ["2023-02-30T10:00:00Z", "2023-13-01T00:00:00Z",
                                "2023-06-01T25:00:00Z", "31/12/2023 10:00", "not-a-date",
                                "2023-04-31T12:00:00+02:00"]),
    ("bad_quantity", "quantity", ["3.5", "many", "1e99", "12-"]),
    ("bad_boolean", "active", ["maybe", "2", "yess"]),
    ("bad_country", "country", ["USA", "Deutschland"]),
    ("missing_required", "email", [None]),
    ("missing_required", "created_at", [None]),
    ("missing_required", "amount", [None]),
]
COLUMNS = ["id", "email", "full_name", "country", "amount", "quantity", "active",
           "created_at", "notes"]
HEADER = ",".join(COLUMNS) + "\n"


def csv_field(s):
    if any(c in s for c in ',"\n\r') or s != s.strip(" "):
        return '"' + s.replace('"', '""') + '"'
    return s


def pools(seed):
    """Value pools shared by every chunk (built from the seed, so identical in each process)."""
    rng = random.Random("%d:pools" % seed)
    names = []
    for i in range(1024):
        name = "%s %s" % (rng.choice(FIRST), rng.choice(LAST))
        r = i % 16
        if r == 0:
            name = "%s, %s" % (rng.choice(LAST), rng.choice(FIRST))
        elif r == 1:
            name = '%s "%s" %s' % (rng.choice(FIRST), rng.choice(["Bob", "Liz", "Al", "Jo"]),
                                   rng.choice(LAST))
        elif r == 2:
            name += ", " + rng.choice(["Jr.", "Sr.", "III", "PhD"])
        names.append(name)
    notes = []
    for i in range(1024):
        r = i % 8
        if r < 4:
            note = ""
        elif r == 4:
            note = rng.choice(PHRASES).replace("%d", str(rng.randrange(1, 99999))).replace("%%", "%")
        elif r == 5:
            note = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 12)))
        elif r == 6:
            lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 6)))
                     for _ in range(rng.randrange(2, 5))]
            note = ("\r\n" if i % 32 == 6 else "\n").join(lines)
        else:
            note = rng.choice(PHRASES).replace("%d", "7").replace("%%", "%") + " " + \
                rng.choice(WORDS)
        notes.append(note)
    dates = []
    for y in range(2020, 2026):
        for m in range(1, 13):
            for d in range(1, 29):
                dates.append("%04d-%02d-%02d" % (y, m, d))
    return {
        "names": names,
        "names_csv": [csv_field(n) for n in names],
        "names_json": [json.dumps(n, ensure_ascii=False) for n in names],
        "notes_csv": [csv_field(n) for n in notes],
        "notes_json": [json.dumps(n, ensure_ascii=False) for n in notes],
        "notes_lines": [n.count("\n") for n in notes],
        "dates": dates,
        "two": ["%02d" % i for i in range(100)],
        "locals": ["%s.%s" % (a, b) for a in LOCAL_FIRST for b in LOCAL_LAST],
    }


_POOLS = None


def chunk(args):
    """Rows first..last (1-based ids, inclusive) as bytes, their physical lines, and the
    manifest entries (with lines relative to the chunk's first line)."""
    seed, first, last, fmt, defects, every = args
    global _POOLS
    if _POOLS is None:
        _POOLS = pools(seed)
    P = _POOLS
    rng = random.Random("%d:rows:%d" % (seed, first))
    bits = rng.getrandbits
    names_csv, names_json = P["names_csv"], P["names_json"]
    notes_csv, notes_json, notes_lines = P["notes_csv"], P["notes_json"], P["notes_lines"]
    dates, two, locals_ = P["dates"], P["two"], P["locals"]
    ndates = len(dates)
    csv = fmt == "csv"
    out = []
    manifest = []
    line = 0
    for i in range(first, last + 1):
        x = bits(112)
        email = "%s%d@%s" % (locals_[x & 255], i, DOMAINS[(x >> 8) & 7])
        ni = (x >> 11) & 1023
        country = COUNTRIES[(x >> 21) & 31]
        cents = (x >> 26) & 0xFFFFF  # up to 10485.75
        quantity = ((x >> 46) & 63) + 1
        active = (x >> 52) & 3 != 0
        day = dates[((x >> 54) & 4095) % ndates]
        hh, mm, ss = two[((x >> 66) & 31) % 24], two[((x >> 71) & 63) % 60], two[((x >> 77) & 63) % 60]
        frac = "" if (x >> 83) & 7 else ".%03d" % ((x >> 86) & 511)
        created = "%sT%s:%s:%s%s%s" % (day, hh, mm, ss, frac, OFFSETS[(x >> 96) & 15])
        oi = (x >> 100) & 1023
        if every and i % every == 0:
            cents += 100
            quantity += 1
            active = not active
        amount = "%d.%s" % (cents // 100, two[cents % 100])
        bad = defects.get(i) if defects else None
        if csv:
            vals = [str(i), email, names_csv[ni], country, amount, str(quantity),
                    "true" if active else "false", created, notes_csv[oi]]
            if bad is not None:
                kind, column, value = bad
                vals[COLUMNS.index(column)] = "" if value is None else csv_field(value)
                manifest.append((i, line, kind, column, value))
            out.append(",".join(vals))
            line += 1 + notes_lines[oi]
        else:
            vals = {"id": str(i), "email": '"%s"' % email, "full_name": names_json[ni],
                    "country": '"%s"' % country, "amount": amount, "quantity": str(quantity),
                    "active": "true" if active else "false", "created_at": '"%s"' % created,
                    "notes": notes_json[oi]}
            if oi % 8 < 4:
                # empty notes: absent or null, as real exports do
                if oi & 16:
                    del vals["notes"]
                else:
                    vals["notes"] = "null"
            if bad is not None:
                kind, column, value = bad
                if value is None:
                    del vals[column]
                else:
                    vals[column] = json.dumps(value)
                manifest.append((i, line, kind, column, value))
            out.append("{" + ",".join('"%s":%s' % kv for kv in vals.items()) + "}")
            line += 1
    out.append("")
    return "\n".join(out).encode(), line, manifest


def defect_plan(seed, rows, rate):
    n = round(rows * rate)
    if not n:
        return {}
    rng = random.Random("%d:defects" % seed)
    ids = rng.sample(range(1, rows + 1), n)
    plan = {}
    for k, i in enumerate(sorted(ids)):
        kind, column, values = DEFECTS[k % len(DEFECTS)]
        value = rng.choice(values)
        if value is not None:
            value = value.replace("{u}", "user%d" % i)
        plan[i] = (kind, column, value)
    return plan


def generate(rows, out, fmt="csv", invalid_rate=0.0, changed=0.0, seed=42, jobs=None):
    plan = defect_plan(seed, rows, invalid_rate)
    every = round(1 / changed) if changed else 0
    tasks = []
    for first in range(1, rows + 1, CHUNK):
        last = min(rows, first + CHUNK - 1)
        sub = {i: plan[i] for i in plan if first <= i <= last} if plan else {}
        tasks.append((seed, first, last, fmt, sub, every))
    tmp = out + ".part"
    manifest_rows = []
    line = 2 if fmt == "csv" else 1
    with open(tmp, "wb", buffering=1 << 22) as f:
        if fmt == "csv":
            f.write(HEADER.encode())
        jobs = jobs or os.cpu_count() or 1
        with multiprocessing.Pool(jobs) as pool:
            for data, lines, manifest in pool.imap(chunk, tasks, chunksize=1):
                f.write(data)
                for i, rel, kind, column, value in manifest:
                    manifest_rows.append((i, i, line + rel, kind, column, value))
                line += lines
    os.replace(tmp, out)
    if invalid_rate:
        with open(out + ".invalid.tsv", "w", encoding="utf-8") as m:
            m.write("id\trecord\tline\tkind\tcolumn\tvalue\n")
            for r in manifest_rows:
                value = "" if r[5] is None else r[5]
                m.write("%d\t%d\t%d\t%s\t%s\t%s\n" % (r[0], r[1], r[2], r[3], r[4], value))
    return len(manifest_rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["csv", "ndjson"], default="csv")
    ap.add_argument("--invalid-rate", type=float, default=0.0)
    ap.add_argument("--changed", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--jobs", type=int, default=None)
    a = ap.parse_args()
    n = generate(a.rows, a.out, a.format, a.invalid_rate, a.changed, a.seed, a.jobs)
    print("%s: %d rows, %d invalid, %.1f MB" % (a.out, a.rows, n, os.path.getsize(a.out) / 1e6),
          file=sys.stderr)


if __name__ == "__main__":
    main()
