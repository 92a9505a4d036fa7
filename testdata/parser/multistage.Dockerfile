# Stages by name (any case) and by index, COPY --from a stage, an image and
# an index, FROM an earlier stage, and a stage the target does not need.
FROM golang:1.22 AS Builder
RUN go build -o /out/app .

FROM alpine AS unused
RUN echo never needed

FROM builder AS tested
RUN /out/app -test

FROM scratch
COPY --from=BUILDER /out/app /app
COPY --from=2 /out/app /app2
COPY --from=nginx:latest /etc/nginx/nginx.conf /etc/
COPY --from=0 /etc/passwd /etc/passwd
ENTRYPOINT ["/app"]
