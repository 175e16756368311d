/*
 * Sortir! live card check in pretix's checkout questions step.
 * The card number is only sent to this pretix (never stored in the browser); the server checks it with
 * APRAS, binds it to this ticket and answers with a translated message.
 */
(function () {
    "use strict";

    function csrfToken(input) {
        var form = input.form;
        var field = form && form.querySelector("input[name=csrfmiddlewaretoken]");
        return field ? field.value : "";
    }

    function feedback(input) {
        var box = input.parentNode.querySelector(".sortir-feedback");
        if (!box) {
            box = document.createElement("div");
            box.className = "sortir-feedback help-block";
            box.setAttribute("role", "status");
            box.setAttribute("aria-live", "polite");
            input.parentNode.appendChild(box);
        }
        return box;
    }

    function show(input, text, ok) {
        var box = feedback(input);
        box.textContent = text;
        box.className = "sortir-feedback help-block " + (ok === true ? "text-success" : ok === false ? "text-danger" : "text-muted");
        input.setAttribute("aria-invalid", ok === false ? "true" : "false");
    }

    function check(input) {
        var digits = input.value.replace(/[\s-]/g, "");
        if (!/^\d{10}$/.test(digits) || input.getAttribute("data-sortir-last") === digits) {
            return;
        }
        input.setAttribute("data-sortir-last", digits);
        show(input, input.getAttribute("data-sortir-checking"), null);
        var body = new URLSearchParams();
        body.append("position", input.getAttribute("data-sortir-position"));
        body.append("card", digits);
        fetch(input.getAttribute("data-sortir-card"), {
            method: "POST",
            credentials: "same-origin",
            headers: {"X-CSRFToken": csrfToken(input), "Content-Type": "application/x-www-form-urlencoded"},
            body: body.toString()
        }).then(function (resp) {
            return resp.json();
        }).then(function (data) {
            if (input.value.replace(/[\s-]/g, "") !== digits) {
                return;  // the buyer typed on meanwhile
            }
            show(input, data.valid ? data.message : data.error, !!data.valid);
            if (!data.valid) {
                input.removeAttribute("data-sortir-last");
            }
        }).catch(function () {
            input.removeAttribute("data-sortir-last");
            show(input, input.getAttribute("data-sortir-failed"), null);
        });
    }

    function init() {
        var inputs = document.querySelectorAll("input[data-sortir-card]");
        Array.prototype.forEach.call(inputs, function (input) {
            input.addEventListener("input", function () { check(input); });
            input.addEventListener("change", function () { check(input); });
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", init);
    } else {
        init();
    }
})();
