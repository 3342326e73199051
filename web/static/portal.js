// Tells the server the browser's time zone (a cookie it reads on the next request), so times are shown in
// the viewer's zone. Everything else in the portal works without this file.
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.split("; ").indexOf("entitle_tz=" + zone) === -1) {
      document.cookie = "entitle_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) {
    // An old browser without Intl time zones: times stay in UTC, labelled so.
  }
})();
