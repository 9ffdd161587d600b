/* livecommerce embed: put
 *   <script src="https://<server>/static/embed.js" data-room="<dealer room id>" async></script>
 * where the room should appear. It inserts an iframe of /embed/<room id>. The room id carries
 * the attribution, so nothing depends on third-party cookies. Optional: data-width,
 * data-height, data-title. The server only lets the dealer's allowed sites frame the room. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-room")) return;
  var room = script.getAttribute("data-room");
  var origin = new URL(script.src, location.href).origin;
  var frame = document.createElement("iframe");
  frame.src = origin + "/embed/" + encodeURIComponent(room);
  frame.title = script.getAttribute("data-title") || "Live shopping";
  frame.setAttribute("allow", "autoplay; fullscreen; clipboard-write");
  frame.setAttribute("data-livecommerce-room", room);
  frame.style.border = "0";
  frame.style.width = "100%";
  frame.style.maxWidth = (script.getAttribute("data-width") || "420") + "px";
  frame.style.height = (script.getAttribute("data-height") || "760") + "px";
  frame.style.borderRadius = "12px";
  frame.style.display = "block";
  script.parentNode.insertBefore(frame, script.nextSibling);
})();
