// The library against a fake HttpMessageHandler: what needs no server (results with their
// headers, errors by status, retries, stream errors and cancellation, timeouts as TimeSpan).
using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace OpenAI.LocalAdapter.Tests
{
    internal sealed class FakeHandler : HttpMessageHandler
    {
        private readonly Func<int, HttpResponseMessage> reply;
        public int Calls;

        public FakeHandler(Func<int, HttpResponseMessage> reply) { this.reply = reply; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            return Task.FromResult(reply(Calls++));
        }

        public static HttpResponseMessage Json(HttpStatusCode status, string body, string contentType = "application/json")
        {
            var response = new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, contentType) };
            response.Headers.Add("x-request-id", "req-42");
            response.Headers.Add("x-ratelimit-remaining-requests", "9");
            return response;
        }
    }

    [TestFixture]
    public class HandlerTests
    {
        private const string Completion = "{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"gpt-4\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}";

        private static string Chunk(string content)
        {
            return "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + content + "\"},\"finish_reason\":null}]}\n\n";
        }

        private static OpenAILocalClient Client(FakeHandler handler, int maxRetries = 0)
        {
            var config = new LocalAdapterConfig { DefaultModel = "gpt-4", MaxRetries = maxRetries, RetryBase = TimeSpan.FromMilliseconds(1) };
            return new OpenAILocalClient(config, handler);
        }

        private static ChatCompletionRequest Ask()
        {
            return new ChatCompletionRequest { Messages = new List<ChatMessage> { new ChatMessage(ChatRole.User, "Hi") } };
        }

        [Test]
        public void AResultCarriesTheRepliesHeaders()
        {
            using (var client = Client(new FakeHandler(_ => FakeHandler.Json(HttpStatusCode.OK, Completion))))
            {
                var result = client.Chat.CreateCompletionResultAsync(Ask()).GetAwaiter().GetResult();
                Assert.AreEqual(200, result.Status);
                Assert.AreEqual("req-42", result.RequestId);
                Assert.AreEqual("9", result.Headers["x-ratelimit-remaining-requests"]);
                Assert.AreEqual("Hi", result.Value.Choices[0].Message.Content);
            }
        }

        [Test]
        public void A401IsAnInvalidApiKeyExceptionWithTheRequestId()
        {
            var handler = new FakeHandler(_ => FakeHandler.Json(HttpStatusCode.Unauthorized, "{\"error\":{\"message\":\"Invalid or missing API key.\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}"));
            using (var client = Client(handler))
            {
                var e = Assert.Throws<InvalidApiKeyException>(() => client.Chat.CreateCompletionAsync(Ask()).GetAwaiter().GetResult());
                Assert.AreEqual(401, e.Status);
                Assert.AreEqual("invalid_api_key", e.Code);
                Assert.AreEqual("req-42", e.RequestId);
            }
        }

        [Test]
        public void A429IsRetriedAfterWhatRetryAfterSays()
        {
            var handler = new FakeHandler(n =>
            {
                if (n > 0) return FakeHandler.Json(HttpStatusCode.OK, Completion);
                var busy = FakeHandler.Json((HttpStatusCode)429, "{\"error\":{\"message\":\"slow down\",\"code\":\"rate_limit_exceeded\"}}");
                busy.Headers.Add("retry-after", "0");
                return busy;
            });
            using (var client = Client(handler, maxRetries: 1))
            {
                Assert.AreEqual("Hi", client.Chat.CreateCompletionAsync(Ask()).GetAwaiter().GetResult().Choices[0].Message.Content);
                Assert.AreEqual(2, handler.Calls);
            }
        }

        [Test]
        public void TheWordErrorInAChunksTextIsText_AnErrorEventEndsTheStream()
        {
            string sse = Chunk("an \\\"error\\\" in the text") + "data: {\"error\":{\"message\":\"Backend 'vllm' closed the connection.\",\"code\":\"backend_disconnected\"}}\n\n";
            using (var client = Client(new FakeHandler(_ => FakeHandler.Json(HttpStatusCode.OK, sse, "text/event-stream"))))
            {
                var stream = (ChatCompletionStream)client.Chat.CreateCompletionStreamAsync(Ask());
                var e = stream.GetAsyncEnumerator();
                Assert.IsTrue(e.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                Assert.AreEqual("an \"error\" in the text", e.Current.Choices[0].Delta.Content);
                Assert.AreEqual("req-42", stream.Headers["x-request-id"]);
                var error = Assert.Throws<LocalAdapterException>(() => e.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                Assert.AreEqual("backend_disconnected", error.Code);
            }
        }

        [Test]
        public void EitherTokenCancelsAStream_TheOneGivenAtCreationAndTheEnumerators()
        {
            string sse = Chunk("one") + Chunk("two") + Chunk("three") + "data: [DONE]\n\n";
            foreach (bool cancelTheFirst in new[] { true, false })
            {
                using (var client = Client(new FakeHandler(_ => FakeHandler.Json(HttpStatusCode.OK, sse, "text/event-stream"))))
                using (var atCreation = new CancellationTokenSource())
                using (var atEnumeration = new CancellationTokenSource())
                {
                    var e = client.Chat.CreateCompletionStreamAsync(Ask(), atCreation.Token).GetAsyncEnumerator(atEnumeration.Token);
                    Assert.IsTrue(e.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                    (cancelTheFirst ? atCreation : atEnumeration).Cancel();
                    Assert.Catch<OperationCanceledException>(() => e.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                }
            }
        }

        [Test]
        public void TimeoutsAreTimeSpans_TheDesignsSecondsMapOntoThem()
        {
            var config = new LocalAdapterConfig { TimeoutSeconds = 90 };
            Assert.AreEqual(TimeSpan.FromSeconds(90), config.Timeout);
            config.Timeout = TimeSpan.FromMinutes(2);
            Assert.AreEqual(120, config.TimeoutSeconds);
            config.TimeoutSeconds = 0;
            Assert.AreEqual(Timeout.InfiniteTimeSpan, config.Timeout);
        }
    }
}
