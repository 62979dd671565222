// On Mono, disposing a response does not close its connection (the stack drains it to reuse
// it), so a cancelled stream would keep the backend generating. This handler sends through
// HttpWebRequest and aborts it when the response is disposed unread or the token is cancelled:
// the connection closes at once and the proxy stops the backend. Modern .NET closes on
// dispose already; OpenAILocalClient uses this handler only on Mono.
using System;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public sealed class AbortingHandler : HttpMessageHandler
    {
        public static bool Needed { get { return Type.GetType("Mono.Runtime") != null; } }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var web = (HttpWebRequest)WebRequest.Create(request.RequestUri);
            web.Method = request.Method.Method;
            web.Timeout = Timeout.Infinite; // HttpClient.Timeout governs
            web.ReadWriteTimeout = Timeout.Infinite;
            web.AllowAutoRedirect = false;
            foreach (var header in request.Headers)
            {
                string value = string.Join(", ", header.Value);
                if (string.Equals(header.Key, "Accept", StringComparison.OrdinalIgnoreCase)) web.Accept = value;
                else if (string.Equals(header.Key, "User-Agent", StringComparison.OrdinalIgnoreCase)) web.UserAgent = value;
                else if (!WebHeaderCollection.IsRestricted(header.Key)) web.Headers.Add(header.Key, value);
            }
            var registration = cancellationToken.Register(() => web.Abort());
            try
            {
                if (request.Content != null)
                {
                    byte[] body = await request.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                    web.ContentType = request.Content.Headers.ContentType?.ToString();
                    web.ContentLength = body.Length;
                    using (var stream = await web.GetRequestStreamAsync().ConfigureAwait(false))
                    {
                        await stream.WriteAsync(body, 0, body.Length, cancellationToken).ConfigureAwait(false);
                    }
                }
                HttpWebResponse response;
                try
                {
                    response = (HttpWebResponse)await web.GetResponseAsync().ConfigureAwait(false);
                }
                catch (WebException e) when (e.Response is HttpWebResponse failed)
                {
                    response = failed; // an error status is a response like any other
                }
                catch (WebException e)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    throw new HttpRequestException(e.Message, e);
                }
                var message = new HttpResponseMessage(response.StatusCode) { RequestMessage = request, ReasonPhrase = response.StatusDescription };
                message.Content = new StreamContent(new AbortOnDispose(response.GetResponseStream(), web, registration));
                foreach (string name in response.Headers.AllKeys)
                {
                    var values = response.Headers.GetValues(name) ?? new string[0];
                    if (!message.Headers.TryAddWithoutValidation(name, values)) message.Content.Headers.TryAddWithoutValidation(name, values);
                }
                return message;
            }
            catch
            {
                registration.Dispose();
                throw;
            }
        }

        /// <summary>The body; disposed before its end, it aborts the request (closing the connection).</summary>
        private sealed class AbortOnDispose : Stream
        {
            private readonly Stream inner;
            private readonly HttpWebRequest request;
            private CancellationTokenRegistration registration;
            private bool ended;

            public AbortOnDispose(Stream inner, HttpWebRequest request, CancellationTokenRegistration registration)
            {
                this.inner = inner;
                this.request = request;
                this.registration = registration;
            }

            public override int Read(byte[] buffer, int offset, int count)
            {
                int n = inner.Read(buffer, offset, count);
                if (n == 0) ended = true;
                return n;
            }

            public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            {
                int n = await inner.ReadAsync(buffer, offset, count, cancellationToken).ConfigureAwait(false);
                if (n == 0) ended = true;
                return n;
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    registration.Dispose();
                    if (!ended) request.Abort();
                    inner.Dispose();
                }
                base.Dispose(disposing);
            }

            public override bool CanRead { get { return true; } }
            public override bool CanSeek { get { return false; } }
            public override bool CanWrite { get { return false; } }
            public override long Length { get { throw new NotSupportedException(); } }
            public override long Position { get { throw new NotSupportedException(); } set { throw new NotSupportedException(); } }
            public override void Flush() { }
            public override long Seek(long offset, SeekOrigin origin) { throw new NotSupportedException(); }
            public override void SetLength(long value) { throw new NotSupportedException(); }
            public override void Write(byte[] buffer, int offset, int count) { throw new NotSupportedException(); }
        }
    }
}
