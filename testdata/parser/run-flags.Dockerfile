# RUN --mount (every type, from a stage and an image), --network and
# --security. Mount options expand with the step's env, as BuildKit does.
FROM alpine AS deps
RUN echo deps > /deps

FROM alpine
RUN --mount=type=cache,target=/root/.cache,id=cache-$NAME,sharing=locked,uid=1000,gid=1000,mode=0755 \
    --mount=type=bind,from=deps,source=/deps,target=/mnt/deps \
    --mount=type=bind,from=busybox:latest,target=/bb,rw \
    --mount=type=tmpfs,target=/tmp \
    --mount=type=secret,id=token,env=TOKEN,required \
    --mount=type=ssh \
    --network=none make
RUN --network=host --security=insecure echo net
RUN --mount=target=/ctx ls /ctx
