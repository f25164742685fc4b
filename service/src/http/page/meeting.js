// The meeting page: follows /api/meetings/{id}/events and shows the live
// transcript and the call's running notes, then the summary as the model
// writes it, then the results or the error. An
// upcoming meeting can be called from here: the browser carries the audio
// to OpenAI (WebRTC) and scribe attaches to the call as its sideband.
"use strict";
// Script errors are kept here as well as in the console, so that a test
// (or a person in the console) can check the page ran cleanly.
window.__scribeErrors = [];
window.addEventListener("error", (e) => window.__scribeErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__scribeErrors.push(String(e.reason)));
(function () {
  const body = document.body;
  const meeting = body.dataset.meeting;
  const token = body.dataset.token;
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  // The transcript's downloads, opened with this page's key.
  for (const link of document.querySelectorAll("#downloads a[data-format]")) {
    link.href = "/api/meetings/" + meeting + "/transcript?format=" + link.dataset.format +
      "&key=" + encodeURIComponent(token);
  }
  const transcript = $("transcript");
  const stagesEl = $("stages");
  const STAGE_NAMES = {
    analysis_actor_started: "Analysis started",
    analysis_actor_restarted: "Analysis restarted",
    transcript_collected: "Transcript collected",
    empty_transcript: "The transcript is empty",
    llm_attempt_started: "Asking the model",
    answer_received: "Answer received",
    results_saved: "Results saved",
    next_meeting_created: "Next meeting created",
    failed: "Failed",
  };
  const STATUS_TEXT = {
    upcoming: "Waiting for the call",
    active: "Call in progress",
    processing: "Call ended: writing the summary",
    completed: "Completed",
    failed: "Analysis failed",
    deleted: "Deleted",
  };
  const CALL_TEXT = {
    idle: "Not started",
    connecting: "Connecting…",
    connected: "Connected",
    ended: "Ended",
    failed: "Could not connect",
  };
  let peer = null;
  let microphone = null;
  let source = null;
  let lastId = null;
  let processingSince = null;
  let estimateMs = null;
  let clockOffsetMs = 0;
  let timer = null;
  // The summary being written: which attempt, and its text so far.
  let draftAttempt = null;
  // A plan session's status as a person would say it.
  const SESSION_TEXT = {
    completed: "done",
    in_progress: "in progress",
    not_started: "not started yet",
  };

  function setStatus(status) {
    statusEl.textContent = STATUS_TEXT[status] || status;
    statusEl.dataset.status = status;
    body.dataset.status = status;
  }

  function addLine(line) {
    const id = "line-" + line.sequence_number;
    if (document.getElementById(id)) return;
    const li = document.createElement("li");
    li.id = id;
    li.dataset.sequence = line.sequence_number;
    const who = document.createElement("span");
    who.className = "speaker " + (line.speaker || "lost");
    who.textContent = line.speaker === "agent" ? "Agent" : line.speaker === "user" ? "User" : "…";
    const text = document.createElement("span");
    if (line.status === "lost") {
      text.className = "lost";
      text.textContent = "(this line was lost)";
    } else if (line.status === "transcription_failed") {
      text.className = "lost";
      text.textContent = "(not transcribed)";
    } else {
      text.textContent = line.text;
    }
    li.append(who, text);
    markLine(li, line.status);
    // Keep conversation order: a lost line arrives after the lines around it.
    let before = null;
    for (const other of transcript.children) {
      if (Number(other.dataset.sequence) > line.sequence_number) { before = other; break; }
    }
    transcript.insertBefore(li, before);
    $("transcript-empty").hidden = true;
  }

  // A line that is not the whole of what was said says so.
  const LINE_MARKS = {
    partial: "(cut short)",
    interrupted: "(interrupted)",
  };

  function markLine(li, status) {
    li.dataset.status = status;
    let mark = li.querySelector(".mark");
    if (!LINE_MARKS[status]) {
      if (mark) mark.remove();
      return;
    }
    if (!mark) {
      mark = document.createElement("span");
      mark.className = "mark";
      li.append(mark);
    }
    mark.textContent = " " + LINE_MARKS[status];
  }

  // Lines may be missing here: scribe was away from the call and cannot
  // know what it missed. It says so and where; it never makes up a line.
  function addHole(hole) {
    const key = "hole-" + hole.after + "-" + hole.before + "-" + hole.from;
    if (document.getElementById(key)) return;
    const li = document.createElement("li");
    li.id = key;
    li.className = "hole";
    const at = hole.after != null ? hole.after + 0.5 : hole.before != null ? hole.before - 0.5 : Infinity;
    li.dataset.sequence = at;
    const time = (t) => (t ? new Date(t).toLocaleTimeString() : "?");
    li.textContent = "Lines may be missing here: scribe was reconnecting to the call (" +
      time(hole.from) + "–" + time(hole.to) + ")";
    let before = null;
    for (const other of transcript.children) {
      if (Number(other.dataset.sequence) > at) { before = other; break; }
    }
    transcript.insertBefore(li, before);
    $("transcript-empty").hidden = true;
  }

  function callState(state) {
    $("call").dataset.state = state;
    $("call-state").textContent = CALL_TEXT[state];
  }

  function callError(message) {
    $("call-error").textContent = message;
    $("call-error").hidden = !message;
  }

  function releaseCall() {
    if (peer) peer.close();
    if (microphone) for (const track of microphone.getTracks()) track.stop();
    peer = null;
    microphone = null;
    $("hang-up").hidden = true;
  }

  // The offer is sent whole (OpenAI takes no trickled candidates): wait for
  // the local candidates, at most 3 s.
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async function startCall() {
    $("start-call").disabled = true;
    callError("");
    callState("connecting");
    try {
      microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
      peer = new RTCPeerConnection();
      const pc = peer;
      pc.addEventListener("track", (e) => { $("agent-audio").srcObject = e.streams[0] || new MediaStream([e.track]); });
      pc.addEventListener("connectionstatechange", () => {
        if (pc !== peer) return;
        if (pc.connectionState === "connected") callState("connected");
        if (pc.connectionState === "failed") { releaseCall(); callState("failed"); callError("The audio connection failed."); }
      });
      for (const track of microphone.getTracks()) pc.addTrack(track, microphone);
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const answer = await fetch("/api/meetings/" + meeting + "/call", {
        method: "POST",
        headers: { "Content-Type": "application/sdp", "X-Meeting-Token": token },
        body: pc.localDescription.sdp,
      });
      if (answer.status !== 201) {
        const problem = await answer.json().catch(() => ({}));
        throw new Error(problem.error || "the server answered " + answer.status);
      }
      await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
      $("start-call").hidden = true;
      $("hang-up").hidden = false;
      $("hang-up").disabled = false;
    } catch (error) {
      releaseCall();
      callState("failed");
      callError("Could not start the call: " + error.message);
      $("start-call").disabled = false;
    }
  }

  async function hangUp() {
    $("hang-up").disabled = true;
    try {
      const answer = await fetch("/api/meetings/" + meeting + "/hangup", {
        method: "POST",
        headers: { "X-Meeting-Token": token },
      });
      if (!answer.ok && answer.status !== 409) {
        const problem = await answer.json().catch(() => ({}));
        throw new Error(problem.error || "the server answered " + answer.status);
      }
      releaseCall();
      callState("ended");
    } catch (error) {
      callError("Could not hang up: " + error.message);
      $("hang-up").disabled = false;
    }
  }

  function showCall(status) {
    const live = peer !== null;
    if (live && status !== "upcoming" && status !== "active") {
      // OpenAI ended the call (or another tab hung up).
      releaseCall();
      callState("ended");
    }
    const ended = $("call").dataset.state === "ended";
    $("call").hidden = !(status === "upcoming" || live || ended);
    $("start-call").hidden = status !== "upcoming" || live;
  }

  function showProblem(error) {
    $("problem-text").textContent = error;
    $("problem").hidden = !error;
  }

  // The call's running notes: the conversation so far, summarized.
  function showNotes(notes) {
    $("notes-text").textContent = notes.text;
    $("notes-covers").textContent = "Covers the conversation up to line " + notes.through_line +
      " · updated " + new Date(notes.at).toLocaleTimeString();
    $("notes").dataset.version = notes.version;
    $("notes").hidden = body.dataset.status === "completed";
  }

  // The summary as the model writes it; a new attempt starts it again.
  function addDelta(delta) {
    const draft = $("draft-text");
    if (delta.attempt !== draftAttempt || delta.offset === 0) {
      draftAttempt = delta.attempt;
      draft.textContent = "";
    }
    // Offsets count characters (code points), as the server does; a
    // string's length counts UTF-16 units.
    if (delta.offset !== Array.from(draft.textContent).length) return;
    draft.textContent += delta.text;
    $("draft").hidden = false;
  }

  function addStage(stage) {
    let text = STAGE_NAMES[stage.stage] || stage.stage;
    if (stage.attempt) text += " (attempt " + stage.attempt + ")";
    if (stage.stage === "transcript_collected" && typeof stage.lines === "number") {
      text += typeof stage.notes_through === "number"
        ? ": the notes up to line " + stage.notes_through + ", then " + stage.lines + " lines"
        : ": " + stage.lines + " lines";
    }
    const li = document.createElement("li");
    li.className = "done";
    li.textContent = text;
    stagesEl.appendChild(li);
  }

  function tick() {
    if (!processingSince) return;
    const elapsed = Math.max(0, Date.now() + clockOffsetMs - processingSince);
    let text = "Elapsed: " + Math.floor(elapsed / 1000) + " s";
    if (estimateMs) {
      const usual = estimateMs < 1000 ? "under a second" : "about " + Math.round(estimateMs / 1000) + " s";
      text += elapsed > estimateMs
        ? " · taking longer than usual (" + usual + ")"
        : " · analyses here usually take " + usual;
      $("progress-bar").value = Math.min(95, (100 * elapsed) / estimateMs);
    } else {
      text += " · no earlier analyses to estimate from yet";
      $("progress-bar").removeAttribute("value");
    }
    $("elapsed").textContent = text;
  }

  function showStatus(data) {
    setStatus(data.status);
    showCall(data.status);
    showProblem(data.status === "active" ? data.error : null);
    clockOffsetMs = data.now ? Date.parse(data.now) - Date.now() : 0;
    $("progress").hidden = data.status !== "processing";
    $("failure").hidden = data.status !== "failed";
    $("results").hidden = data.status !== "completed";
    // The notes stand in for the summary until it is there.
    if (data.status === "completed") $("notes").hidden = true;
    if (data.status === "processing") {
      processingSince = data.processing_started_at ? Date.parse(data.processing_started_at) : Date.now();
      estimateMs = data.estimate_ms;
      if (!timer) timer = setInterval(tick, 500);
      tick();
    } else if (timer) {
      clearInterval(timer);
      timer = null;
    }
    if (data.status === "failed") {
      $("error").textContent = data.error || "The analysis failed.";
      $("retry").disabled = false;
    }
    if (data.status === "completed") {
      $("summary").textContent = data.summary || "";
      const sessions = Array.isArray(data.progress) ? data.progress : [];
      $("plan").hidden = sessions.length === 0;
      const list = $("plan-sessions");
      list.replaceChildren();
      for (const s of sessions) {
        const li = document.createElement("li");
        li.dataset.status = s.status;
        const name = document.createElement("span");
        name.className = "session-name";
        name.textContent = s.session_name;
        const said = SESSION_TEXT[s.status] || String(s.status || "").replace(/_/g, " ");
        // Notes that only repeat the name and status add nothing.
        const notes = s.notes && !/^[^:]+: [a-z_]+$/.test(s.notes) ? ". " + s.notes.replace(/\.$/, "") : "";
        li.append(name, document.createTextNode(" \u2014 " + said + notes + "."));
        list.appendChild(li);
      }
      if (data.next_meeting_page) {
        $("next-link").href = data.next_meeting_page;
        $("next").hidden = false;
      }
    }
  }

  function track(event) {
    if (event.lastEventId) lastId = event.lastEventId;
  }

  function connect() {
    if (source) source.close();
    // EventSource sends no headers of its own: the key goes in the query.
    // When a stream ends at its lifetime, the browser reconnects to the
    // same address with Last-Event-ID and misses nothing.
    let url = "/api/meetings/" + meeting + "/events?key=" + encodeURIComponent(token);
    if (lastId) url += "&last_event_id=" + encodeURIComponent(lastId);
    source = new EventSource(url);
    // How many times the stream opened (a reconnect after the stream's
    // lifetime counts): for whoever watches the page.
    source.addEventListener("open", () => {
      body.dataset.streams = String(Number(body.dataset.streams || 0) + 1);
    });
    source.addEventListener("line", (e) => { track(e); addLine(JSON.parse(e.data)); });
    source.addEventListener("stage", (e) => { track(e); addStage(JSON.parse(e.data)); });
    source.addEventListener("notes", (e) => { track(e); showNotes(JSON.parse(e.data)); });
    source.addEventListener("analysis_delta", (e) => { track(e); addDelta(JSON.parse(e.data)); });
    source.addEventListener("ended", (e) => {
      track(e);
      for (const line of JSON.parse(e.data).lost_lines || []) addLine(line);
    });
    source.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
    source.addEventListener("hole", (e) => { track(e); addHole(JSON.parse(e.data)); });
    source.addEventListener("problem", (e) => {
      track(e);
      if (body.dataset.status === "active") showProblem(JSON.parse(e.data).error);
    });
    source.addEventListener("line_status", (e) => {
      track(e);
      const change = JSON.parse(e.data);
      const li = document.getElementById("line-" + change.sequence_number);
      if (li) markLine(li, change.status);
    });
    source.addEventListener("end", () => { source.close(); source = null; });
    // The meeting was deleted while the page was open: nothing of it is
    // left to show.
    source.addEventListener("deleted", () => {
      source.close();
      source = null;
      setStatus("deleted");
      transcript.replaceChildren();
      for (const id of ["call", "notes", "draft", "progress", "results", "failure", "downloads"]) {
        const el = $(id);
        if (el) el.hidden = true;
      }
      $("transcript-empty").hidden = false;
      $("transcript-empty").textContent = "This meeting was deleted: its transcript, notes and results are gone.";
    });
  }

  $("retry").addEventListener("click", async () => {
    const button = $("retry");
    button.disabled = true;
    $("retry-error").hidden = true;
    try {
      const answer = await fetch("/api/meetings/" + meeting + "/retry", {
        method: "POST",
        headers: { "X-Meeting-Token": token },
      });
      if (!answer.ok) {
        const body = await answer.json().catch(() => ({}));
        throw new Error(body.error || "the server answered " + answer.status);
      }
      stagesEl.replaceChildren();
      draftAttempt = null;
      $("draft-text").textContent = "";
      $("draft").hidden = true;
      connect();
    } catch (error) {
      $("retry-error").textContent = "Could not retry: " + error.message;
      $("retry-error").hidden = false;
      button.disabled = false;
    }
  });

  $("start-call").addEventListener("click", startCall);
  $("hang-up").addEventListener("click", hangUp);
  // A closed tab ends the call at OpenAI (the media stops); scribe then
  // finalizes when OpenAI says the call is over.
  window.addEventListener("pagehide", () => { if (peer) peer.close(); });

  callState("idle");
  connect();
})();
