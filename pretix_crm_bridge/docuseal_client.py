"""
Thin DocuSeal API client over the core's HTTP layer (``shared/docs/crm-apis.md`` §2): it speaks HTTP only.

Base URL: ``https://api.docuseal.com`` (cloud), ``https://api.docuseal.eu`` (EU cloud) or ``https://<host>/api``
(self-hosted); the API key travels in ``X-Auth-Token``.
"""
from urllib.parse import urlsplit, urlunsplit

from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.errors import ServiceBadResponse
from pretix_integrations_core.httpclient import HttpClient, json_body

SERVICE_DOCUSEAL = "DocuSeal"

#: DocuSeal's web component, for the cloud (self-hosted instances serve it themselves under /js/form.js)
CLOUD_FORM_SCRIPT = "https://cdn.docuseal.com/js/form.js"
CLOUD_APP = {"api.docuseal.com": "docuseal.com", "api.docuseal.eu": "docuseal.eu"}


def app_url(api_url: str) -> str:
    """The address of DocuSeal's web app for an API base URL (``api.docuseal.com`` → ``docuseal.com``, ``…/api`` → ``…``)."""
    parts = urlsplit((api_url or "").rstrip("/"))
    host = parts.netloc
    if parts.hostname in CLOUD_APP:
        host = CLOUD_APP[parts.hostname]
    path = parts.path[:-4] if parts.path.endswith("/api") else parts.path
    return urlunsplit((parts.scheme, host, path, "", ""))


def form_script_url(api_url: str) -> str:
    host = urlsplit(api_url or "").hostname
    if host in CLOUD_APP:
        return CLOUD_FORM_SCRIPT
    return app_url(api_url) + "/js/form.js"


class DocuSealClient:
    def __init__(self, base_url, api_key, *, scope, **http_kwargs):
        self.http = HttpClient(SERVICE_DOCUSEAL, base_url, scope=scope, headers={
            "X-Auth-Token": api_key, "Accept": "application/json",
        }, **http_kwargs)

    def _json(self, resp, op, kind=(dict,)):
        data = json_body(resp, SERVICE_DOCUSEAL, op)
        if not isinstance(data, kind):
            raise ServiceBadResponse(SERVICE_DOCUSEAL, op, status=resp.status_code)
        return data

    def ping(self):
        self.http.request("GET", "/templates", operation=str(_("list templates")), params={"limit": 1})

    def get_template(self, template_id):
        op = str(_("read a template"))
        return self._json(self.http.request("GET", f"/templates/{int(template_id)}", operation=op), op)

    def find_submitter(self, external_id):
        """The newest submitter with this external id (DocuSeal does not enforce their uniqueness), or None."""
        op = str(_("find a signature request"))
        data = self._json(self.http.request("GET", "/submitters", operation=op, params={"external_id": external_id, "limit": 10}), op)
        rows = [r for r in data.get("data") or [] if isinstance(r, dict) and r.get("external_id") == external_id]
        return max(rows, key=lambda r: r.get("id") or 0) if rows else None

    def create_submission(self, body):
        """``POST /submissions``: returns the first submitter of the answer (an array of submitters)."""
        op = str(_("create a signature request"))
        data = self._json(self.http.request("POST", "/submissions", operation=op, json=body), op, kind=(list,))
        if not data or not isinstance(data[0], dict) or not data[0].get("submission_id"):
            raise ServiceBadResponse(SERVICE_DOCUSEAL, op)
        return data[0]

    def get_submission(self, submission_id):
        op = str(_("read a signature request"))
        return self._json(self.http.request("GET", f"/submissions/{int(submission_id)}", operation=op), op)

    def archive_submission(self, submission_id):
        op = str(_("archive a signature request"))
        return self._json(self.http.request("DELETE", f"/submissions/{int(submission_id)}", operation=op, retry_safe=True), op)

    def resend(self, submitter_id):
        """Ask DocuSeal to email the signing link to the signer again (``PUT /submitters/{id}`` with ``send_email``)."""
        op = str(_("send the signing link again"))
        return self._json(self.http.request("PUT", f"/submitters/{int(submitter_id)}", operation=op, json={"send_email": True},
                                            retry_safe=True), op)

    def submission_url(self, submission_id):
        return f"{app_url(self.http.base_url)}/submissions/{int(submission_id)}"
