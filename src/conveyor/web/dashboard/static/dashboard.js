// conveyor dashboard: live updates and actions. No framework, no eval, no inline script:
// the Content-Security-Policy allows this file alone.
//
// - The page's live region ([data-live]) is fetched again (?fragment=1) when the job-event
//   stream (Server-Sent Events, body[data-stream]) says something happened, at most once a
//   second, and every body[data-poll] seconds while the stream is not connected.
// - A progress event moves that job's <progress> bar at once, without a fetch.
// - Buttons and forms with data-action send their API request (data-method, data-url) with
//   the browser's own session; the answer (or the problem) is shown in #flash.
(function () {
  "use strict";

  var body = document.body;
  var live = document.querySelector("[data-live]");
  var updated = document.querySelector("[data-updated]");
  var liveState = document.querySelector("[data-live-state]");
  var flash = document.getElementById("flash");
  var pollSeconds = parseFloat(body.dataset.poll || "5");
  var updatedAt = Date.now();
  var streamOpen = false;
  var pending = null;
  var lastRefresh = 0;
  var refreshing = false;

  function tick() {
    if (updated) {
      updated.textContent = "updated " + Math.round((Date.now() - updatedAt) / 1000) + " s ago";
    }
  }

  function setLiveState(text) {
    if (liveState) {
      liveState.textContent = text;
    }
  }

  function fragmentUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  function refresh() {
    if (!live || refreshing) {
      return;
    }
    refreshing = true;
    lastRefresh = Date.now();
    fetch(fragmentUrl(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the page answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (!live.contains(document.activeElement) || document.activeElement === body) {
          live.innerHTML = html;
        } else {
          keepFocus(html);
        }
        updatedAt = Date.now();
        tick();
      })
      .catch(function () {
        setLiveState("offline");
      })
      .finally(function () {
        refreshing = false;
      });
  }

  // Replacing the region under a focused control would throw the user's focus away.
  function keepFocus(html) {
    var id = document.activeElement && document.activeElement.id;
    live.innerHTML = html;
    if (id) {
      var again = document.getElementById(id);
      if (again) {
        again.focus();
      }
    }
  }

  function soon() {
    if (pending) {
      return;
    }
    var wait = Math.max(0, 1000 - (Date.now() - lastRefresh));
    pending = window.setTimeout(function () {
      pending = null;
      refresh();
    }, wait);
  }

  function moveProgress(event) {
    var bars = document.querySelectorAll('[data-progress-for="' + CSS.escape(event.job) + '"]');
    var labels = document.querySelectorAll('[data-percent-for="' + CSS.escape(event.job) + '"]');
    if (!bars.length || event.percent === null || event.percent === undefined) {
      return false;
    }
    bars.forEach(function (bar) {
      bar.value = event.percent;
      bar.textContent = Math.round(event.percent) + " %";
    });
    labels.forEach(function (label) {
      label.textContent = Math.round(event.percent) + " %";
    });
    updatedAt = Date.now();
    tick();
    return true;
  }

  function connect() {
    var url = body.dataset.stream;
    if (!url || !window.EventSource || !updated) {
      setLiveState(updated ? "polling" : "");
      return;
    }
    var source = new EventSource(url);
    source.addEventListener("ready", function () {
      streamOpen = true;
      setLiveState("live");
    });
    source.addEventListener("job", function (message) {
      var event = JSON.parse(message.data);
      if (event.kind === "progress" && moveProgress(event)) {
        return;
      }
      soon();
    });
    source.onerror = function () {
      streamOpen = false;
      setLiveState("polling");
    };
  }

  function poll() {
    var due = streamOpen ? 30000 : pollSeconds * 1000;
    if (Date.now() - lastRefresh >= due) {
      refresh();
    }
  }

  // -- actions ------------------------------------------------------------------------

  function formBody(form) {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.disabled) {
        return;
      }
      var type = field.dataset.type;
      if (type === "bool") {
        data[field.name] = field.checked;
      } else if (type === "number") {
        data[field.name] = Number(field.value);
      } else if (type === "json") {
        data[field.name] = field.value.trim() ? JSON.parse(field.value) : undefined;
      } else if (field.value !== "" || !("optional" in field.dataset)) {
        data[field.name] = field.value;
      }
    });
    return data;
  }

  function say(text, isProblem) {
    flash.textContent = text;
    flash.className = isProblem ? "problem" : "done";
  }

  function describe(answer) {
    if (answer === null) {
      return "Done.";
    }
    if (typeof answer.count === "number") {
      return (answer.dry_run ? "Would delete " : "Done: ") + answer.count + ".";
    }
    if (answer.state) {
      return "Done: job " + answer.id + " is " + answer.state + ".";
    }
    return "Done.";
  }

  function send(element, payload) {
    var message = element.dataset.confirm;
    if (message && !window.confirm(message)) {
      return;
    }
    var method = element.dataset.method;
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (method !== "DELETE" || payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload === undefined ? {} : payload);
    }
    element.setAttribute("aria-busy", "true");
    fetch(element.dataset.url, options)
      .then(function (response) {
        var isJson = (response.headers.get("Content-Type") || "").indexOf("json") >= 0;
        var read = response.status === 204 || !isJson ? Promise.resolve(null) : response.json();
        return read.then(function (answer) {
          if (!response.ok) {
            var detail = answer && (answer.detail || answer.title);
            say(detail || "The request failed (" + response.status + ").", true);
            return;
          }
          say(describe(answer), false);
          if (method === "DELETE" && element.dataset.action === "job.remove" && body.dataset.stream.indexOf("job=") >= 0) {
            window.location.assign(document.querySelector(".brand a").href + "jobs");
            return;
          }
          refresh();
        });
      })
      .catch(function (error) {
        say("The request failed: " + error.message, true);
      })
      .finally(function () {
        element.removeAttribute("aria-busy");
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button) {
      event.preventDefault();
      send(button, undefined);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-action]");
    if (!form) {
      return;
    }
    event.preventDefault();
    var payload;
    try {
      payload = formBody(form);
    } catch (error) {
      say("Not valid JSON: " + error.message, true);
      return;
    }
    send(form, payload);
  });

  window.setInterval(tick, 1000);
  window.setInterval(poll, 1000);
  lastRefresh = Date.now();
  connect();
})();
