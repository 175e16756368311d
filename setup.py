import os
import re

from setuptools import find_namespace_packages, setup

here = os.path.abspath(os.path.dirname(__file__))
with open(os.path.join(here, "pretix_integrations_core", "__init__.py"), encoding="utf-8") as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

PLUGINS = ["pretix_integrations_core", "pretix_sortir", "pretix_helloasso_bridge", "pretix_crm_bridge"]

setup(
    name="pretix-fr-integrations",
    version=version,
    description="pretix plugins for French event organisers: Sortir! social tariff, HelloAsso bridge, CRM bridge",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    # Namespace packages, so that the data folders (templates, static, locale/*/LC_MESSAGES) are part of the
    # packages configuration, and package_data patterns for their files: the wheel and the sdist ship them without
    # a setuptools warning per folder, and a plugin without templates or static files yet needs no special case.
    packages=find_namespace_packages(include=[p for name in PLUGINS for p in (name, f"{name}.*")], exclude=["*.__pycache__"]),
    package_data={"": ["*.html", "*.txt", "*.js", "*.css", "*.svg", "*.png", "*.json", "*.po", "*.mo"]},
    include_package_data=True,
    install_requires=[
        # what the code imports; all but pretix also come with pretix, but are named as direct imports
        "pretix>=2026.8.0,<2027",
        "Django>=5.2,<6",
        "django-scopes>=2.0",
        "djangorestframework>=3.15",
        "requests>=2.31",
        "urllib3>=2",
        "cryptography>=42",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-django>=4.8",
            "freezegun>=1.5",
            "flake8>=7",
            "isort>=5.13",
            "psycopg2-binary>=2.9",
            "playwright>=1.40",
            "beautifulsoup4>=4.12",
        ],
    },
    entry_points="""
[pretix.plugin]
pretix_integrations_core=pretix_integrations_core:PretixPluginMeta
pretix_sortir=pretix_sortir:PretixPluginMeta
pretix_helloasso_bridge=pretix_helloasso_bridge:PretixPluginMeta
pretix_crm_bridge=pretix_crm_bridge:PretixPluginMeta
""",
    classifiers=[
        "Framework :: Django",
        "Programming Language :: Python :: 3.11",
        "Natural Language :: French",
        "Natural Language :: English",
    ],
)
