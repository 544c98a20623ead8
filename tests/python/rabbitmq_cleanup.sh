#!/usr/bin/env bash
# RabbitMQ declares /queue/<name> (and bare <name>) destinations as durable queues
# that outlive the suite. This deletes the suite's queues (stampede-it-*, ocid1.queue.*)
# from vhost "/" in one rabbitmqctl call.
set -euo pipefail
rabbitmqctl eval '
Prefixes = [<<"stampede-it-">>, <<"ocid1.queue.">>],
Match = fun(N) -> lists:any(fun(P) -> binary:match(N, P) =:= {0, byte_size(P)} end, Prefixes) end,
Qs = [Q || Q <- rabbit_amqqueue:list(<<"/">>),
           begin {resource, _, queue, N} = amqqueue:get_name(Q), Match(N) end],
[rabbit_amqqueue:delete(Q, false, false, <<"cleanup">>) || Q <- Qs],
io_lib:format("deleted ~b queues", [length(Qs)]).'
