"""The deployment decision: which cell of a (suite, model, device, batch) group to ship, under the user's
budgets and objective, with the confidence the run's own data allow.

`budgets` judges a row against a bound with its 95% interval (met, uncertain, failed); `speed` compares
two cells' speed cycle by cycle; `decision` ranks a group's cells, each with the one reason it is not
first; `render` writes that for the terminal, report.md and decision.json.
"""
