"""The workshop: each of the three problems shown live, before and after, with measured figures.

``python -m workshop`` (or ``python -m app workshop``, ``make workshop``). The "before" states
are real code paths that live here, outside the deployable (the app never imports this package),
or faults from the platform's fault registry. See docs/workshop.md.
"""
