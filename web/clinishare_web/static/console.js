// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Confirm before a form that changes something important (the no-JS path has its own confirm pages).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Removing share labels unshares at once: ask first (without JavaScript the remove section is a
  // separate, closed part of the window that has to be opened on purpose).
  document.querySelectorAll("form[data-confirm-unshare]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var n = form.querySelectorAll("input[name^=remove_]:checked").length;
      if (n && !window.confirm(form.getAttribute("data-confirm-unshare"))) { event.preventDefault(); }
    });
  });

  // Documents: "Assign Labels" appears once at least one document is selected (as in the article).
  document.querySelectorAll("form[data-selection]").forEach(function (form) {
    var button = form.querySelector("[data-needs-selection]");
    var count = form.querySelector("[data-selected-count]");
    if (!button) { return; }
    function update() {
      var n = form.querySelectorAll("input[name=document_ids]:checked").length;
      button.hidden = n === 0;
      if (count) { count.textContent = n ? n + " selected" : "Select documents to assign labels"; }
    }
    form.addEventListener("change", update);
    update();
  });

  // The Patient Workspace picker opens the workspace as soon as one is chosen.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Form builder: add more field rows than the six the page starts with.
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var rows = document.querySelector("[data-field-rows]");
    var counter = document.querySelector("[data-row-count]");
    button.hidden = false;
    button.addEventListener("click", function () {
      var all = rows.querySelectorAll("[data-field-row]");
      var last = all[all.length - 1];
      var next = all.length;
      var copy = last.cloneNode(true);
      copy.classList.remove("invalid");
      copy.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
      copy.querySelector("legend").textContent = "Field " + (next + 1);
      copy.querySelectorAll("[id],[name],[for]").forEach(function (el) {
        ["id", "name", "for"].forEach(function (attr) {
          var v = el.getAttribute(attr);
          if (v) { el.setAttribute(attr, v.replace(/^f\d+_/, "f" + next + "_")); }
        });
        if (el.tagName === "INPUT" && el.type !== "checkbox") { el.value = ""; }
        if (el.type === "checkbox") { el.checked = false; }
      });
      rows.appendChild(copy);
      counter.value = String(next + 1);
      copy.querySelector("input").focus();
    });
  });

  // Sharing options: the practitioner/office choices matter only when sharing is allowed.
  document.querySelectorAll("input[data-reveals]").forEach(function (box) {
    var target = document.getElementById(box.getAttribute("data-reveals"));
    function update() { target.hidden = !box.checked; }
    box.addEventListener("change", update);
    update();
  });

  // The user menu closes with Escape and gives focus back to its button.
  document.querySelectorAll("details.user-menu").forEach(function (menu) {
    menu.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  });
});
