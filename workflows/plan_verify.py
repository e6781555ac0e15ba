"""Plan and verify: an implementation plan, an independent check of it, then work items."""

workflow = {
    "name": "plan-verify",
    "description": "Implementation plan, independent verification of the plan, work items.",
    "args": {
        "goal": {"type": "string", "description": "What should be built or changed."},
        "constraints": {"type": "string", "description": "Limits to respect.", "default": ""},
    },
}

PLANNER = (
    "You are a senior engineer writing an implementation plan. Read the relevant project files "
    "with your tools first. Write numbered steps; for each: what changes, in which files, and "
    "how it will be tested. End with the risks you see. Keep it to what the goal needs."
)

VERIFIER = (
    "You verify implementation plans independently. You get the goal, the constraints and a "
    "plan written by someone else. Check each step against the project files (use your "
    "tools): is it necessary, is it sufficient, is it testable, does it respect the "
    "constraints? Reply with VERDICT: approve or VERDICT: revise on the first line, then the "
    "problems you found, each tied to a step number, and what the plan is missing."
)

PLANNER_OF_WORK = (
    "You turn a verified plan into work items. For each item: a title, the acceptance "
    "criteria (checkable statements), and the plan steps it covers. Apply every correction "
    "the verifier asked for. Reply with one item per paragraph."
)


def run(args):
    brief = "Goal: " + args["goal"]
    if args["constraints"]:
        brief = brief + "\nConstraints: " + args["constraints"]
    tools = ["list_files", "read_file", "grep"]
    planner = agent("planner", prompt=PLANNER, tools=tools)
    verifier = agent("verifier", prompt=VERIFIER, tools=tools)
    itemiser = agent("work-items", prompt=PLANNER_OF_WORK)

    def with_brief(plan):
        return brief + "\n\nPlan:\n" + plan

    def with_review(review):
        return brief + "\n\nVerifier's review:\n" + review

    plan = planner.run(brief)
    review = pipeline([with_brief, verifier], input=plan)
    verdict = review.splitlines()[0].lower() if review else ""
    log("verifier: " + (verdict or "no verdict"))
    items = itemiser.run(with_brief(plan) + "\n\nVerifier's review:\n" + review)
    return {"plan": plan, "review": review, "approved": "approve" in verdict,
            "work_items": items}
