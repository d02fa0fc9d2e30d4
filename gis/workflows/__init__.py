"""The use cases, each written once: read inputs once, compute, write in one transaction
with the audit row, under the store's lock. The command line and the HTTP service only
parse, call one of these, and render.

- :mod:`~gis.workflows.data`: import, the demo city, city summary
- :mod:`~gis.workflows.grids`: divide, re-divide, report
- :mod:`~gis.workflows.staff`: quotas, assignment, edits, payroll
- :mod:`~gis.workflows.coverage`: coverage and gaps
- :mod:`~gis.workflows.sites`: site tests, optimisation, scenarios
"""
