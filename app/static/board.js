/* The now-serving board: listens on the public, read-only /board namespace. */
(function () {
  "use strict";
  var list = document.getElementById("board-serving");
  var status = document.getElementById("board-status");
  var MAX = 12;

  function row(s) {
    var li = document.createElement("li");
    li.dataset.number = s.number;
    var main = document.createElement("span");
    main.textContent = s.number + " → desk " + s.desk + (s.recall ? " (second call)" : "");
    var service = document.createElement("span");
    service.className = "board-service";
    service.textContent = s.service;
    main.appendChild(service);
    li.appendChild(main);
    return li;
  }

  function remove(number) {
    var old = list.querySelector('li[data-number="' + number + '"]');
    if (old) { old.remove(); }
    var empty = document.getElementById("board-empty");
    if (empty) { empty.remove(); }
  }

  function render(state) {
    list.textContent = "";
    state.serving.forEach(function (s) { list.appendChild(row(s)); });
    if (!state.serving.length) {
      list.appendChild(document.createElement("li")).id = "board-empty";
      document.getElementById("board-empty").textContent = "No numbers called yet.";
    }
    state.waiting.forEach(waiting);
  }

  function waiting(w) {
    var li = document.querySelector('#board-waiting li[data-queue="' + w.queue + '"] span');
    if (li) { li.textContent = w.waiting; }
  }

  var socket = io("/board", { transports: ["websocket", "polling"] });
  socket.on("connect", function () {
    status.textContent = "Live";
    socket.emit("board.state", {}, render);
  });
  socket.on("disconnect", function () { status.textContent = "Reconnecting…"; });
  socket.on("board.called", function (s) {
    remove(s.number);
    var li = row(s);
    li.className = "board-new";
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX) { list.removeChild(list.lastChild); }
    setTimeout(function () { li.className = ""; }, 8000);
  });
  socket.on("board.cleared", function (s) { remove(s.number); });
  socket.on("board.waiting", waiting);
})();
