-- wrk script for the wsgi-echo-64k scenario: every request is a POST with a 64 KiB body.
-- wrk.format adds the Content-Length header for wrk.body.
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
