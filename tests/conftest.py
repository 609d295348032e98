pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.sandbox",
    "tests.fixtures.runtime",
    "tests.fixtures.billed_store",
]
