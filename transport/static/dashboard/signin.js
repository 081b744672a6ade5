// The sign-in form: posts the token as JSON; the server answers with an HttpOnly session cookie.
"use strict";

document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("signin-error");
  const button = event.target.querySelector("button");
  error.hidden = true;
  button.disabled = true;
  try {
    const response = await fetch("/dashboard/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: document.getElementById("token").value }),
      credentials: "same-origin",
    });
    if (response.status === 204) {
      window.location.replace("/dashboard");
      return;
    }
    const body = await response.json().catch(() => ({}));
    error.textContent = body.detail || `sign-in failed (${response.status})`;
  } catch (err) {
    error.textContent = `the server did not answer: ${err.message}`;
  }
  error.hidden = false;
  button.disabled = false;
});
