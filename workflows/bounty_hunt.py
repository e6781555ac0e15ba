"""Bounty hunt: parallel vulnerability scans with one focus each, findings ranked."""

workflow = {
    "name": "bounty-hunt",
    "description": "Parallel vulnerability scans, one focus each (injection, auth, crypto, "
    "business logic), findings ranked.",
    "args": {
        "target": {"type": "string", "description": "Folder or file to scan.", "default": "."},
        "foci": {
            "type": "array",
            "description": "One scanner per focus.",
            "default": ["injection", "auth", "crypto", "business logic"],
        },
    },
}

SCANNER = (
    "You are a security researcher hunting for vulnerabilities with ONE focus: {focus}. "
    "Read the code with your tools; follow data from its inputs to where it is used. Report "
    "only issues you can point to in the code, each on its own line as: "
    "IMPACT (1-10) | LIKELIHOOD (1-10) | LOCATION | ISSUE | HOW TO EXPLOIT. "
    "If you find nothing within your focus, reply with exactly: none"
)

TRIAGE = (
    "You triage vulnerability reports. Remove duplicates and reports without a concrete "
    "location, then rank the rest by impact times likelihood. Reply with the ranked list in "
    "the same line format, highest first."
)


def score(line):
    parts = [p.strip() for p in line.split("|")]
    if len(parts) != 5 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return {"impact": int(parts[0]), "likelihood": int(parts[1]), "location": parts[2],
            "issue": parts[3], "exploit": parts[4], "score": int(parts[0]) * int(parts[1])}


def run(args):
    scanners = [
        agent("scan-" + focus.replace(" ", "-"), prompt=SCANNER.replace("{focus}", focus),
              tools=["list_files", "read_file", "grep"])
        for focus in args["foci"]
    ]
    found = parallel([(s, "Scan " + args["target"]) for s in scanners])
    lines = []
    for i in range(len(scanners)):
        if found[i] is None:
            log("scanner for " + args["foci"][i] + " failed")
            continue
        lines.extend(line for line in found[i].splitlines() if score(line) is not None)
    if not lines:
        return {"target": args["target"], "findings": []}
    ranked_text = agent("triage", prompt=TRIAGE).run("\n".join(lines))
    ranked = [score(line) for line in ranked_text.splitlines()]
    ranked = [r for r in ranked if r is not None]
    if not ranked:  # the triage answer was unusable: rank the raw findings ourselves
        ranked = sorted((score(line) for line in lines), key=lambda r: -r["score"])
    return {"target": args["target"], "findings": ranked}
