"""Organizers' publishing: the merged leaderboard (tables, confidence intervals, HTML report) and the
Grand-Challenge evaluation mode (`harness gc-evaluate`).

Everything here reads what the scoring side already wrote (results.json documents, case records)
and never re-implements scoring or aggregation: the numbers on a published page are the numbers of
`harness.results`, rearranged.
"""
