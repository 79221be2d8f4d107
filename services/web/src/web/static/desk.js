// The day sheet's print button (no inline script: the site's CSP forbids it).
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-desk-print]")) {
    window.print();
  }
});
