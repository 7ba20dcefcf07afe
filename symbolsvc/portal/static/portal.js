// The page's behaviour: "verify" buttons and live updates. Reading needs none of it.
"use strict";

(function () {
  const table = document.getElementById("records-table");
  if (!table) return;
  const lang = document.documentElement.lang;
  const vkey = document.getElementById("log-vkey").textContent;
  const witnessList = document.getElementById("witness-vkeys");
  const witnesses = {
    vkeys: witnessList ? [...witnessList.querySelectorAll("code")].map((c) => c.textContent) : [],
    quorum: witnessList ? Number(witnessList.dataset.quorum) : 0,
  };
  const message = (key) => document.querySelector(`#messages [data-key="${key}"]`).textContent;
  const verifier = globalThis.SymbolsvcVerify;

  async function verify(button) {
    const row = button.closest("tr");
    const out = row.querySelector("output.verdict");
    out.className = "verdict";
    out.textContent = message("v_running");
    try {
      // relative to the page (/p/TOKEN/): the link stays the only place naming the person
      const reply = await fetch(`proof/${encodeURIComponent(row.dataset.recordId)}`,
                                { credentials: "same-origin", cache: "no-store" });
      if (reply.status === 409) {
        out.textContent = message("v_pending");
        return;
      }
      if (!reply.ok) throw new verifier.VerifyError(`HTTP ${reply.status}`);
      const shown = {
        kind: row.dataset.kind, timeUs: row.dataset.timeUs, requester: row.dataset.requester,
        officeWork: row.dataset.officeWork, infoItem: row.dataset.infoItem,
        providers: row.dataset.providers,
      };
      const result = await verifier.verifyRecord(await reply.json(), vkey, shown, witnesses);
      out.textContent = message("v_ok").replace("{index}", result.index)
        .replace("{size}", result.size);
      if (witnesses.vkeys.length) {
        out.textContent += " " + message("v_witnessed").replace("{n}", result.cosigned)
          .replace("{m}", witnesses.vkeys.length);
      }
      out.classList.add("ok");
      row.dataset.verified = "ok";
    } catch (err) {
      const why = err.message === "unsupported" ? message("v_unsupported") : err.message;
      out.textContent = message("v_fail").replace("{why}", why);
      out.classList.add("fail");
      row.dataset.verified = "fail";
    }
  }

  function arm(root) {
    if (!(globalThis.crypto && crypto.subtle && verifier)) return;
    for (const button of root.querySelectorAll("button.verify")) {
      button.hidden = false;
      button.addEventListener("click", () => verify(button));
    }
  }
  arm(table);

  if (table.dataset.live !== "1" || !globalThis.EventSource) return;
  const status = document.getElementById("live-status");
  const body = table.tBodies[0];
  const source = new EventSource(
    `events?after=${encodeURIComponent(table.dataset.newest)}&lang=${lang}`);
  source.addEventListener("ready", () => { table.dataset.liveState = "ready"; });
  source.addEventListener("error", () => { table.dataset.liveState = "reconnecting"; });
  source.addEventListener("record", (event) => {
    const data = JSON.parse(event.data);
    if (document.getElementById(`r${data.id}`)) return;  // already shown
    const template = document.createElement("template");
    template.innerHTML = data.row.trim();
    const row = template.content.firstElementChild;
    row.classList.add("new");
    body.insertBefore(row, body.firstElementChild);
    arm(row);
    const none = document.getElementById("no-records");
    if (none) none.remove();
    status.textContent = message("new_record");
  });
})();
